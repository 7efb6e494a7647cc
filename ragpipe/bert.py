"""A BERT sentence encoder in NumPy: the shipped MiniLM without torch.

``import torch`` alone takes seconds, longer than embedding a question; a cold
``ragpipe search`` paid it every time. The forward pass of a BERT encoder with mean
pooling (what sentence-transformers runs for all-MiniLM-L6-v2) is a few matrix
products, so it is written here with the weights read by ``safetensors``' NumPy API
and the tokenizer of the ``tokenizers`` package, both from the model's own folder.
It computes the same float32 function as sentence-transformers: the test suite checks
the vectors against it (tests/test_bert.py).

Sequences are packed, not padded: the dense layers run over the tokens of all texts
stacked together and attention runs per text, so no work is spent on padding and a
text's vector does not depend on the others in its batch. GELU is the exact (erf)
form, with erf from Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7, below
float32 resolution of the result): NumPy has no erf.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelNotFound

# Rows of the packed token matrix per block of the feed-forward layer: the
# intermediate activations (rows x 1536 floats) stay in the CPU cache.
_BLOCK_ROWS = 256
# Up to this many distinct tokens are read from the file row by row (a query: ~0.1 ms)
# instead of loading the whole word-embedding table (45 MB for MiniLM).
_FEW_ROWS = 512


def supported(folder: Path) -> bool:
    """True when ``folder`` holds a model this module computes exactly.

    That is a sentence-transformers folder of a BERT encoder in model.safetensors with a
    tokenizer.json, followed by mean pooling (and optionally Normalize) and nothing else.
    """
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        st_config = json.loads(
            (folder / "sentence_bert_config.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return False
    if st_config.get("do_lower_case"):
        return False
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if types not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    if modules[0].get("path", ""):
        return False
    try:
        pooling = json.loads(
            (folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError, KeyError):
        return False
    others = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and others == ["pooling_mode_mean_tokens"]
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def load_tokenizer(folder: Path, max_length: int = 0) -> Any:
    """The model's fast tokenizer (a ``tokenizers.Tokenizer``), without padding.

    With ``max_length`` it truncates as sentence-transformers does (special tokens
    included in the length); without, it does not truncate (for counting tokens).
    """
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exception
        raise ModelNotFound(f"cannot read {folder / 'tokenizer.json'}: {exc}") from None
    # The file's own settings (pad/truncate to 128) are what transformers overrides per call.
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length, strategy="longest_first")
    else:
        tok.no_truncation()
    return tok


def _erf(x: np.ndarray) -> np.ndarray:
    """erf(x), in place, Abramowitz & Stegun 7.1.26."""
    sign = np.sign(x)
    np.abs(x, out=x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * x)
    e = np.exp(-(x * x))
    poly = np.float32(1.061405429) * t
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.multiply(poly, e, out=x)
    np.subtract(1.0, x, out=x)
    x *= sign
    return x


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, erf form (BERT's "gelu"), computed in place."""
    y = _erf(x * np.float32(1.0 / math.sqrt(2.0)))
    y += 1.0
    y *= 0.5
    x *= y
    return x


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    x = x - mean
    var = np.mean(x * x, axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + np.float32(eps))
    x *= weight
    x += bias
    return x


class _Layer:
    """One encoder layer's weights, as (in, out) views for row-major products.

    A transposed view costs nothing: BLAS reads it with its transpose flag.
    """

    def __init__(self, w: dict[str, np.ndarray], p: str) -> None:
        a = f"{p}.attention"
        self.qkv = np.concatenate(
            [w[f"{a}.self.{n}.weight"] for n in ("query", "key", "value")]
        ).T
        self.qkv_b = np.concatenate([w[f"{a}.self.{n}.bias"] for n in ("query", "key", "value")])
        self.out = w[f"{a}.output.dense.weight"].T
        self.out_b = w[f"{a}.output.dense.bias"]
        self.ln1 = (w[f"{a}.output.LayerNorm.weight"], w[f"{a}.output.LayerNorm.bias"])
        self.up = w[f"{p}.intermediate.dense.weight"].T
        self.up_b = w[f"{p}.intermediate.dense.bias"]
        self.down = w[f"{p}.output.dense.weight"].T
        self.down_b = w[f"{p}.output.dense.bias"]
        self.ln2 = (w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])


class BertEncoder:
    """A BERT encoder with mean pooling and L2 normalization, in NumPy (float32)."""

    def __init__(self, folder: Path, max_seq_length: int) -> None:
        from safetensors import safe_open

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_seq_length = min(max_seq_length, int(config["max_position_embeddings"]))
        self.path = folder / "model.safetensors"
        try:
            with safe_open(str(self.path), framework="np") as f:
                names = set(f.keys())
                prefix = "bert." if "bert.embeddings.word_embeddings.weight" in names else ""
                self._word_key = prefix + "embeddings.word_embeddings.weight"
                w = {
                    k[len(prefix):]: f.get_tensor(k).astype(np.float32, copy=False)
                    for k in names
                    if k.startswith(prefix) and not k.endswith("position_ids")
                    and ".pooler." not in f".{k}" and k != self._word_key
                }
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise ModelNotFound(f"cannot read the weights in {self.path}: {exc}") from None
        # The word embeddings (half of the file) load on demand: a query needs a few rows.
        self._word: np.ndarray | None = None
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n = int(config["num_hidden_layers"])
        self.layers = [_Layer(w, f"encoder.layer.{i}") for i in range(n)]

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.hidden

    def encode(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors of token-id sequences (special tokens included), one row each."""
        if not ids:
            return np.zeros((0, self.hidden), dtype=np.float32)
        lengths = [len(s) for s in ids]
        if min(lengths) < 1 or max(lengths) > self.max_seq_length:
            raise ValueError(f"sequence lengths must be 1..{self.max_seq_length}")
        flat = np.fromiter((t for s in ids for t in s), dtype=np.int64, count=sum(lengths))
        pos = np.concatenate([np.arange(n) for n in lengths])
        x = self._embeddings(flat) + self.position[pos]
        x += self.token_type
        x = _layer_norm(x, *self.ln, self.eps)
        bounds = np.cumsum([0, *lengths])
        for layer in self.layers:
            x = self._layer(layer, x, bounds)
        out = np.add.reduceat(x, bounds[:-1], axis=0) / np.asarray(lengths, np.float32)[:, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, np.float32(1e-12))).astype(np.float32)

    def _embeddings(self, ids: np.ndarray) -> np.ndarray:
        """The word embedding rows of ``ids``: read one by one for a few, else all at once."""
        from safetensors import safe_open

        if self._word is None:
            unique, inverse = np.unique(ids, return_inverse=True)
            with safe_open(str(self.path), framework="np") as f:
                if len(unique) <= _FEW_ROWS:
                    rows = f.get_slice(self._word_key)
                    table = np.concatenate([rows[int(i) : int(i) + 1] for i in unique])
                    return table.astype(np.float32, copy=False)[inverse]
                self._word = f.get_tensor(self._word_key).astype(np.float32, copy=False)
        return self._word[ids]

    def _layer(self, layer: _Layer, x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        h, d = self.heads, self.hidden // self.heads
        qkv = x @ layer.qkv
        qkv += layer.qkv_b
        ctx = np.empty_like(x)
        scale = np.float32(1.0 / math.sqrt(d))
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            n = e - s
            # (3, heads, n, d), contiguous: NumPy multiplies strided stacks without BLAS
            part = np.ascontiguousarray(qkv[s:e].reshape(n, 3, h, d).transpose(1, 2, 0, 3))
            scores = part[0] @ part[1].transpose(0, 2, 1)
            scores *= scale
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx[s:e] = (scores @ part[2]).transpose(1, 0, 2).reshape(n, h * d)
        attn = ctx @ layer.out
        attn += layer.out_b
        attn += x
        attn = _layer_norm(attn, *layer.ln1, self.eps)
        out = np.empty_like(attn)
        for s in range(0, len(attn), _BLOCK_ROWS):
            block = attn[s : s + _BLOCK_ROWS]
            up = block @ layer.up
            up += layer.up_b
            gelu(up)
            down = up @ layer.down
            down += layer.down_b
            down += block
            out[s : s + _BLOCK_ROWS] = down
        return _layer_norm(out, *layer.ln2, self.eps)
