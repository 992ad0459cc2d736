"""Inference engines behind one Backend seam, and model resolution (names, weights, identity)."""
