"""selfimprove: a language model improves itself from unlabeled questions, auditable end to end."""
__version__ = "0.1.0"
