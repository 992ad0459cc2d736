"""Evaluation: held-out scoring (scorers, the code sandbox, pass@k with intervals), UQ-TTC and the contamination guard."""
