"""GPT-2 state dicts (Hugging Face / OpenAI layout) -> our decoder's state dict.

Pure `state_dict -> state_dict` functions. GPT-2 stores its projections as Conv1D weights [in, out]; our decoder
uses nn.Linear [out, in], so exactly these weights are transposed.
"""

from __future__ import annotations

import re

import torch

# Conv1D weights of the stock GPT-2 block, and of the original gated cross-attention block (reference §8)
CONV1D_SUFFIXES = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
    "crossattention.c_attn.weight",
    "crossattention.q_attn.weight",
    "crossattention.c_proj.weight",
    "mlp_crossattention.c_fc.weight",
    "mlp_crossattention.c_proj.weight",
)

# Buffers of older GPT-2 code (causal mask and its fill value): derivable, never needed.
STALE_BUFFER = re.compile(r"(^|\.)(attn|crossattention)\.(bias|masked_bias)$")

# original (gated GPT-2 fork) name -> our name, inside one block h.N
_BLOCK_RENAMES = {
    "ln_cross_attn": "ln_xattn",
    "crossattention.q_attn": "xattn.c_q",
    "crossattention.c_attn": "xattn.c_kv",
    "crossattention.c_proj": "xattn.c_proj",
    "ln_2_crossattention": "ln_xmlp",
    "mlp_crossattention.c_fc": "xmlp.c_fc",
    "mlp_crossattention.c_proj": "xmlp.c_proj",
    "alpha_cattn": "xattn_gate",
    "alpha_dense": "xmlp_gate",
}


def gpt2_key(key: str) -> str | None:
    """Our decoder key for a GPT-2 key (with or without the `transformer.` prefix); None for keys we drop."""
    if key == "lm_head.weight":
        return None  # tied to wte
    key = key.removeprefix("transformer.")
    if STALE_BUFFER.search(key):
        return None
    m = re.match(r"h\.(\d+)\.(.+)$", key)
    if m:
        rest = m.group(2)
        for old, new in _BLOCK_RENAMES.items():
            if rest == old or rest.startswith(old + "."):
                rest = new + rest[len(old) :]
                break
        return f"h.{m.group(1)}.{rest}"
    return key


def gpt2_to_decoder(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Convert a (gated) GPT-2 state dict. Returns (our state dict, the source keys that were dropped)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for k, v in state_dict.items():
        new = gpt2_key(k)
        if new is None:
            dropped.append(k)
            continue
        if k.endswith(CONV1D_SUFFIXES) and v.dim() == 2:
            v = v.t()
        out[new] = v.contiguous()
    return out, dropped
