"""OPSD: on-policy self-distillation from the same model reading privileged information (arXiv 2601.18734)."""
