"""Small, fast, deterministic stand-ins for fault-injection tests (never used by the product)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

from ragpipe.generation import Capabilities


class HashEmbedder:
    """Bag-of-words hashed into a fixed number of dimensions, L2-normalized.

    Deterministic across processes, so a crashed-and-resumed sync can be compared bit for
    bit with a clean one; similar texts share words and so get similar vectors.
    """

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hash-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return 128

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None):
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out

    def embed_query(self, text: str):
        return self.embed([text])[0]


class ObedientModel:
    """An answer model that says what it is told to, whatever the prompt: a model that
    obeys an instruction injected into a document. Streams ``text`` a few characters at a
    time, so links are split across pieces as a real model splits them."""

    name, n_ctx, temperature = "obedient", 4096, 0.0
    capabilities = Capabilities()  # text only, in-process

    def __init__(self, text: str) -> None:
        self.text = text

    def count_prompt_tokens(self, messages) -> int:  # noqa: ANN001
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, max_tokens: int):  # noqa: ANN001, ANN201
        pieces = [self.text[i : i + 3] for i in range(0, len(self.text), 3)]
        yield from pieces[:max_tokens]


class Wrapped:
    """A real model behind only the generator contract; subclasses watch or change ``stream``.

    ``text_only`` declares no optional capability (the contract's minimum), as a plain
    server would.
    """

    def __init__(self, gen, text_only: bool = False) -> None:  # noqa: ANN001
        self.gen, self.text_only = gen, text_only

    @property
    def name(self) -> str:
        return self.gen.name

    @property
    def n_ctx(self) -> int:
        return self.gen.n_ctx

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities() if self.text_only else self.gen.capabilities

    def count_prompt_tokens(self, messages) -> int:  # noqa: ANN001
        return self.gen.count_prompt_tokens(messages)

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        return self.gen.stream(messages, max_tokens)
