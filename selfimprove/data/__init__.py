"""Data in: seed questions for training and held-out sets for evaluation, validated with file, row and field."""
