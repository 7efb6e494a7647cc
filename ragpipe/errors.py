"""Typed errors. Each message is one line a user can act on; the CLI and UI print it as is."""

from __future__ import annotations


class RagpipeError(Exception):
    """Base class of every error ragpipe raises on purpose."""


class IndexNotFound(RagpipeError):
    """The named index does not exist yet."""


class IndexMismatch(RagpipeError):
    """The index was built with another embedder or format than the one configured."""


class IndexCorrupt(RagpipeError):
    """An index file failed its checksum or cannot be read."""


class IndexDamaged(IndexCorrupt):
    """SQLite reports the index database as damaged; ``ragpipe fsck --repair`` salvages it."""


class IndexLocked(RagpipeError):
    """Another process is writing to the index."""


class SyncRefused(RagpipeError):
    """A sync stopped before writing anything: it would change more than was asked for."""


class RootMismatch(SyncRefused):
    """The folder given is not the one the index holds (``--rebase`` re-points it)."""


class MassDelete(SyncRefused):
    """The sync would delete too much of the index at once (``--allow-deletes`` proceeds)."""


class SourceUnavailable(RagpipeError):
    """A document's original file cannot be opened or changed through ragpipe.

    It is outside the index's source folder, gone, not a regular file, or not in the index.
    """


class JobRefused(RagpipeError):
    """A background sync was not started: another runs on that index, or it was cancelled."""


class ModelNotFound(RagpipeError):
    """A model file or folder is missing, incomplete or corrupt."""


class ModelServerError(RagpipeError):
    """A model server could not be reached, timed out, or refused a request."""


class PrivacyRefused(RagpipeError):
    """A local_only index's passages would be sent to a model server that is not local."""


class ConfigError(RagpipeError):
    """A setting in ragpipe.toml or the environment is invalid."""


class InvalidArgument(RagpipeError, ValueError):
    """An argument given to the library cannot be used (a blank question, k < 1)."""


class ReadError(RagpipeError):
    """A file could not be read; ``outcome`` says how (see datatypes.Outcome)."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class OutputLocked(RagpipeError):
    """Another process is writing the same output folder (a summarize run)."""
