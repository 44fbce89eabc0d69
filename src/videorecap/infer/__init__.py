"""Inference: the clip -> segment -> video recursion (`hierarchy`), decoding, and what drives them."""
