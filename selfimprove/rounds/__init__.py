"""Scheduled retraining that compounds: tracks, their champion, and the promotion gate.

A track is a named line of models (e.g. `arith`). Its champion is the model that last passed the
gate; `model: champion:<track>` starts a run from it. The registry itself (the `models` and
`promotions` tables) lives in `selfimprove.warehouse.registry`.
"""
