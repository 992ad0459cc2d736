"""Evaluation: held-out sets scored by `selfimprove.scoring` (pass@k with intervals, paired deltas) and the
contamination guard; UQ-TTC, which also judges, lives above in `selfimprove.testtime`."""
