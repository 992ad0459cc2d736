"""The reporting layer, beside `tasks/`: what a run's lake says, rendered for people and taken out for other
tools. Each method family's view (`method_views.py`), the HTML report, the dataset and model cards, the export
of curated data, models and the held-out set as an lm-evaluation-harness task. It reads the lake through
`warehouse/` (the lake's contract, which knows no method) and asks the method registry what a run's method
adds. Installed as `selfimprove.reporting`."""
