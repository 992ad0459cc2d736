"""Generation: candidate sampling from the policy model, and reading final answers out of text."""
