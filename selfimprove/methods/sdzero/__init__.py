"""SD-Zero: self-revision training (Phase 1) and on-policy self-distillation from a frozen teacher (Phase 2)."""
