"""The one place where ragpipe's stages are wired together.

    folder --walk--> files --read--> Document --chunk--> [Chunk] --embed--> vectors --> Store
    question --embed--> query vector --search--> [Hit] --fit prompt--> model --> Answer

The CLI and the web UI both use only this package's Pipeline.

Modules: ``pipeline`` (the Pipeline: settings, lazy embedder, generator and chunker,
build_generator, the one place ``llm.backend`` is read,
sync, fsck, search, prepare, stream, ask), ``sync`` (planning a sync from size/mtime
and hashes, applying it with checkpoints), ``answer`` (the AnswerStream: streamed
text, then the checks and abstention that make the Answer) and ``progress`` (the
sync's progress callback and terminal bar).
"""

from typing import TYPE_CHECKING

from .pipeline import Pipeline, build_generator
from .progress import Progress

if TYPE_CHECKING:
    from .answer import AnswerStream

__all__ = ["AnswerStream", "Pipeline", "Progress", "build_generator"]


def __getattr__(name: str):  # noqa: ANN202 - the answer code loads only when asked for
    if name == "AnswerStream":
        from .answer import AnswerStream

        return AnswerStream
    raise AttributeError(name)
