"""ragpipe: offline question answering over private documents.

The public API is ``Pipeline`` (ingest/sync, search, ask, stream) and the
typed values in ``ragpipe.datatypes``; both the CLI and the web UI use it.
"""

from .datatypes import Answer, Chunk, Citation, Document, Hit, Outcome, SyncStats
from .errors import RagpipeError
from .settings import Settings, load_settings

__all__ = [
    "Answer", "Chunk", "Citation", "Document", "Hit", "Outcome", "Pipeline", "RagpipeError",
    "Settings", "SyncStats", "load_settings",
]
__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - lazy import keeps `ragpipe --help` fast
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
