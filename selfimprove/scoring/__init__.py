"""Scoring, the bottom of the library: reading final answers out of model text (`answers.py`), deciding whether
an output answers an item (`scorers.py`), and running model-written code only in the sandbox (`sandbox.py`,
`sandbox_runner.py`). It imports nothing of the library but validation, so sampling, judging, rewards and
evaluation all build on it."""
