"""Inference: turning a model's inputs into caption text (decoding loops, batching).

`caption_batch` (batch.py) is the one function that captions a batch; `decode.generate_ids` turns a level's inputs
into token ids with the decoding loops of decode.py.
"""

from videorecap.infer.batch import CaptionItem, caption_batch
from videorecap.infer.decode import DecodeConfig, generate_ids

__all__ = ["CaptionItem", "DecodeConfig", "caption_batch", "generate_ids"]
