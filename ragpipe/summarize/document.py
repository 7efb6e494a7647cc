"""One document's summary: map-reduce over its chunks, links removed, every sentence checked."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..datatypes import Chunk
from ..safety import neutralize_links
from .check import check_summary
from .mapreduce import summarize_chunks
from .records import DocumentSummary, output_key
from .templates import check_style, prompt_version


@dataclass(frozen=True)
class SummaryOptions:
    """How summaries are made; everything here that shapes the text is in the key."""

    style: str
    model: str  # the model setting, as configured
    max_tokens: int = 384
    group_tokens: int = 512
    custom: str | None = None  # a --prompt file's instruction, replacing the style's

    def __post_init__(self) -> None:
        check_style(self.style)

    @property
    def prompt_version(self) -> str:
        """The templates or custom instruction, and the budgets (templates.prompt_version)."""
        return prompt_version(self.custom, self.max_tokens, self.group_tokens)

    def key(self, sha256: str) -> str:
        """The key of the summary of the content ``sha256`` made with these options."""
        return output_key(sha256, self.model, self.prompt_version, self.style)


def summarize_document(
    gen: Any, source: str, sha256: str, chunks: Sequence[Chunk], options: SummaryOptions,
    also_in: Sequence[str] = (),
) -> DocumentSummary:
    """Summarize the document ``source`` from its chunks (in order) and check the summary.

    Links, images and HTML that the model writes are removed (safety.neutralize_links:
    a URL stays only when the document states it), as in answers.
    """
    t0 = time.monotonic()
    draft, usage = summarize_chunks(
        gen, source, chunks, options.style, options.custom, options.max_tokens,
        options.group_tokens,
    )
    draft = neutralize_links(draft, [c.text for c in chunks])
    t1 = time.monotonic()
    sentences = check_summary(draft, chunks)
    timings = {**{k: round(v, 3) for k, v in usage.seconds.items()},
               "check_s": round(time.monotonic() - t1, 3),
               "total_s": round(time.monotonic() - t0, 3)}
    return DocumentSummary(
        source=source, sha256=sha256, model=options.model,
        prompt_version=options.prompt_version, style=options.style, draft=draft,
        sentences=sentences, key=options.key(sha256), also_in=tuple(also_in),
        map_calls=usage.map_calls, reduce_calls=usage.reduce_calls,
        prompt_tokens=usage.prompt_tokens, generated_tokens=usage.generated,
        timings=timings, created=time.time(),
    )
