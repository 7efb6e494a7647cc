"""Reading a GGUF file's description without loading the model, in pure Python.

A GGUF file starts with its metadata (typed key-value pairs: ``general.*``,
``ARCH.context_length``, ``tokenizer.*``) and the shapes of its tensors; the weights
follow. Reading only that header is fast whatever the model's size, and needs neither
llama.cpp nor memory for the weights. Format: github.com/ggml-org/ggml, docs/gguf.md
(versions 2 and 3; version 1 used 32-bit counts and is refused).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ModelNotFound

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
KEEP_ARRAY = 16  # arrays longer than this (the vocabulary) are kept as their length only
_LIMIT = 1 << 24  # no key, string or count in a sane header is this large

# general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_* (tests compare with llama_cpp's own).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}


@dataclass(frozen=True)
class ArrayInfo:
    """A long array in the metadata, kept as its element type and length."""

    type: int
    length: int


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: int = 0
    parameters: int = 0  # elements of all tensors

    @property
    def architecture(self) -> str:
        """general.architecture, e.g. "llama", "qwen2"."""
        return str(self.metadata.get("general.architecture", ""))

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for (ARCH.context_length)."""
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if value is not None else None

    @property
    def quantization(self) -> str:
        """The file type as llama.cpp names it ("Q4_K_M"); '' when not recorded."""
        ftype = self.metadata.get("general.file_type")
        if ftype is None:
            return ""
        return FILE_TYPES.get(int(ftype), f"type {ftype}")


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("the file ends inside its header")
        return struct.unpack(fmt, data)[0]

    def count(self) -> int:
        n = self.scalar("<Q")
        if n > _LIMIT:
            raise ValueError(f"a count of {n} in the header")
        return n

    def string(self) -> str:
        data = self.f.read(self.count())
        return data.decode("utf-8", "replace")

    def skip_string(self) -> None:
        self.f.seek(self.count(), 1)

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, n = self.scalar("<I"), self.count()
            if n <= KEEP_ARRAY:
                return [self.value(etype) for _ in range(n)]
            if etype in _SCALARS:
                self.f.seek(n * struct.calcsize(_SCALARS[etype]), 1)
            elif etype == _STRING:
                for _ in range(n):
                    self.skip_string()
            else:
                for _ in range(n):
                    self.value(etype)
            return ArrayInfo(etype, n)
        raise ValueError(f"unknown value type {vtype}")


def read_header(path: Path) -> GGUFHeader:
    """The metadata and tensor shapes of the GGUF file at ``path``; raises ModelNotFound."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelNotFound(f"{path} is not a GGUF file: point llm.model at a .gguf model")
            r = _Reader(f)
            version = r.scalar("<I")
            if version < 2:
                raise ValueError(f"GGUF version {version} is too old")
            n_tensors, n_kv = r.count(), r.count()
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                metadata[key] = r.value(r.scalar("<I"))
            parameters = 0
            for _ in range(n_tensors):
                r.skip_string()
                dims = [r.scalar("<Q") for _ in range(r.scalar("<I"))]
                r.scalar("<I")  # tensor type
                r.scalar("<Q")  # offset
                parameters += math.prod(dims)
    except FileNotFoundError:
        raise ModelNotFound(f"model file {path} does not exist") from None
    except (ValueError, OSError, struct.error) as exc:
        raise ModelNotFound(f"{path}: unreadable GGUF header ({exc}): the file is corrupt or "
                            "incomplete") from None
    return GGUFHeader(version, metadata, n_tensors, parameters)
