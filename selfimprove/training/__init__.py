"""Training: supervised fine-tuning through TRL, and the divergences on-policy distillation minimises."""
