"""What every format reader takes and returns: ReadOptions in, Extracted out."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..datatypes import Page

if TYPE_CHECKING:
    from ..settings import IngestSettings


@dataclass(frozen=True)
class ReadOptions:
    """Limits and switches for reading one file (picklable: it travels to the workers)."""

    max_bytes: int = 100 << 20  # files larger than this are refused before reading
    ocr: bool = True  # OCR pages without a text layer when Tesseract is installed
    ocr_lang: str = "eng"
    # Time budget for slow optional work (OCR), in seconds; the worker's hard timeout is separate.
    budget_s: float = math.inf
    # Decompressed size allowed for the parts of one Office file (zip bombs are refused).
    max_unzipped_bytes: int = 1 << 30

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> ReadOptions:
        """Options from the ``[ingest]`` settings."""
        timeout = float(ingest.timeout_s)
        memory = int(ingest.memory_mb)
        return cls(
            max_bytes=int(ingest.max_file_mb * (1 << 20)),
            ocr=ingest.ocr,
            ocr_lang=ingest.ocr_lang,
            # Leave a quarter of the hard timeout for the text of the other pages.
            budget_s=0.75 * timeout if timeout > 0 else math.inf,
            # Half the address space: the decompressed XML is parsed into a tree on top of it.
            max_unzipped_bytes=(memory << 19) if memory > 0 else 1 << 30,
        )


@dataclass
class Extracted:
    """A reader's result: pages (possibly empty ones) and non-fatal notes about them."""

    pages: list[Page]
    notes: list[str] = field(default_factory=list)
    kind: str | None = None  # set when the reader refines the kind (e.g. "md")


Reader = Callable[[bytes, ReadOptions], Extracted]
