"""Reading folders of documents: the walk, the format readers and the isolated worker pool.

``read_many`` is what ingestion uses: every file is parsed in a worker process
with a timeout and a memory cap. ``read_document`` reads one file in-process.
"""

from .base import ReadOptions
from .readers import READER_VERSION, read_document
from .walk import FoundFile, walk
from .workers import ReaderPool, read_many

__all__ = [
    "READER_VERSION", "FoundFile", "ReadOptions", "ReaderPool", "read_document", "read_many",
    "walk",
]
