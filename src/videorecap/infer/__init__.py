"""Inference: turning a model's inputs into caption text (decoding loops, batching)."""
