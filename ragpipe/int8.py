"""int8 document embeddings: the embedder's own BERT, exported to ONNX with int8 weights.

Embedding is nearly all of an ingest (README: Speed), and at float32 it is near the
CPU's limit, so the lever is precision. The model's weights are exported once to an
ONNX graph (torch's exporter, mean pooling and normalization inside the graph), its
matrix weights quantized to int8 with one scale per output channel (ONNX Runtime's
dynamic quantization: activations are quantized per batch at run time), and run by
ONNX Runtime, which loads in a fraction of a second where torch takes seconds.

Only documents take this path. A question is one short text, cheap at float32, and
keeps the exact float32 function of ``bert.py``: measured on SciFact, float32 questions
against int8 documents rank as well as float32 on both sides, and better than int8 on
both sides (README: Speed). The index records the variant (``all-MiniLM-L6-v2+int8``).

The file is made from the installed weights, never downloaded: by ``ragpipe models
prepare`` (``make models``) or on first use, in the user cache
(``~/.cache/ragpipe/embedders/``, keyed by the weights' SHA-256 and this recipe's
version). The export is checked against the float32 vectors before it is kept, and is
written under a temporary name and renamed, so an interrupted export leaves nothing.

Known property: the activations' scale is computed per batch, so an int8 vector
depends slightly on the texts embedded with it (a paragraph alone and in batches of
others: cosine 0.990-0.997); batches are texts of similar length, sorted, as for float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelNotFound

# Bumped whenever the export or quantization recipe changes: a new file, a new key.
RECIPE = "int8-v1"
# The export is refused when a check text's int8 vector is further than this from float32:
# a guard against a broken export, not a quality measure (that is SciFact's, README: Speed).
# Measured: 0.981 the lowest over 600 SQuAD paragraphs; the two-letter "ok" 0.962.
MIN_COSINE = 0.95
CHECK_TEXTS = (
    "How many days of annual leave do I get, and can I carry them over?",
    "Employees accrue 25 days of paid leave per calendar year; up to five unused days may "
    "be carried over into the first quarter of the following year with a manager's "
    "approval.",
    "The compressor must be switched off and disconnected from the mains before the "
    "filter housing is opened. Replace the filter every 500 operating hours.",
    "Résumé of the café's opening hours: Montag–Freitag 8–18 Uhr, samedi 9 h – 12 h.",
    "東京都の事務所は月曜日から金曜日まで営業しています。",
    "Invoice 2024-0117: total EUR 1,250.00, due within 30 days, VAT 19%.",
    "ok",
)


def cache_dir() -> Path:
    """Where exported embedders are kept (``$XDG_CACHE_HOME/ragpipe/embedders``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ragpipe" / "embedders"


def weights_sha256(folder: Path) -> str:
    """SHA-256 of the model's weights file (the cache key)."""
    h = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_file(folder: Path, name: str) -> Path:
    """The cached int8 file for the model in ``folder``."""
    return cache_dir() / f"{name}-{weights_sha256(folder)[:16]}-{RECIPE}.onnx"


def available() -> bool:
    """True when ONNX Runtime is installed (it is a dependency; a trimmed install may lack it)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def ensure(folder: Path, name: str, window: int) -> Path:
    """The int8 file for the model in ``folder``, exported first if it is not cached."""
    path = model_file(folder, name)
    if not path.is_file():
        export(folder, path, window)
    return path


def export(folder: Path, dest: Path, window: int) -> None:
    """Export and quantize the model in ``folder`` to ``dest``, checked against float32.

    Needs torch, sentence-transformers, onnx and onnxruntime (all dependencies); takes
    about half a minute for MiniLM.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    model = _load(folder)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        f32, q8 = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        export_float32(model, f32)
        quantize(f32, q8)
        encoder = Int8Encoder(q8, folder, window, threads=1)
        got = encoder.encode_texts(list(CHECK_TEXTS))
        want = model.encode(list(CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
        lowest = float((got * want).sum(axis=1).min())
        if lowest < MIN_COSINE:
            raise ModelNotFound(
                f"the int8 export of {folder} is too far from its float32 vectors (lowest "
                f"cosine {lowest:.3f} < {MIN_COSINE}): set embedder.precision = \"fp32\""
            )
        os.replace(q8, dest)


def _load(folder: Path) -> Any:
    """The sentence-transformers model in ``folder``, on torch, offline."""
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - the library raises several types
        raise ModelNotFound(f"cannot load embedder from {folder}: {exc}") from None


def export_float32(model: Any, path: Path) -> None:
    """The model's encoder with mean pooling and L2 normalization as a float32 ONNX graph.

    Inputs ``input_ids`` and ``attention_mask`` (batch x tokens, int64), output
    ``embedding`` (batch x dim), as sentence-transformers computes it.
    """
    import torch

    bert: Any = model[0].auto_model
    bert.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids: Any, mask: Any) -> Any:
            hidden = self.inner(
                input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
            ).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on traced control flow
        torch.onnx.export(
            Pooled(bert), (ids, torch.ones_like(ids)), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )


def quantize(src: Path, dst: Path, **options: Any) -> None:
    """Dynamic int8 quantization of a float32 graph's matrix weights.

    ragpipe's recipe is the default: signed int8 weights, one scale per output channel
    (per-tensor scales lost much more: README: Speed); ``options`` go to ONNX Runtime's
    ``quantize_dynamic`` for comparisons (benchmarks/bench_int8.py).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice on pre-processing
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         **{"per_channel": True, **options})
    finally:
        root.setLevel(level)


class Int8Encoder:
    """An exported int8 model under ONNX Runtime: token ids -> unit vectors."""

    def __init__(self, path: Path, folder: Path, window: int, threads: int = 0) -> None:
        import onnxruntime as ort

        from .bert import load_tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        # Threads that spin while they wait take the cores the reader processes parse on
        # (as torch's OpenMP threads did: README: Speed); sleeping ones do not.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelNotFound(
                f"cannot load {path}: {exc}: delete it and run `ragpipe models prepare`"
            ) from None
        self.tokenizer = load_tokenizer(folder, window)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``, as one padded batch."""
        return self.encode([e.ids for e in self.tokenizer.encode_batch(list(texts))])

    def encode(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors of token-id sequences (special tokens included), one padded batch."""
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        longest = max(len(s) for s in ids)
        tokens = np.zeros((len(ids), longest), dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            tokens[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (out,) = self.session.run(None, {"input_ids": tokens, "attention_mask": mask})
        return np.asarray(out, dtype=np.float32)
