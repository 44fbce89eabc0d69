"""Inference: the clip -> segment -> video recursion (`hierarchy`), decoding, and what drives them.

`batch.caption_batch` is the one function that captions a batch; `decode.generate_ids` turns a level's inputs into
token ids with the decoding loops of decode.py. Nothing is imported here, so that a light submodule (hierarchy)
does not pull in torch through its package.
"""
