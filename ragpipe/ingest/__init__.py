"""Reading folders of documents: the walk, the format readers and (later) worker isolation."""

from .readers import read_document
from .walk import FoundFile, walk

__all__ = ["FoundFile", "read_document", "walk"]
