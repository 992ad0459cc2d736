"""Generation: candidate sampling from the policy model, with its few-shot examples (reading final answers out
of text is `selfimprove.scoring.answers`)."""
