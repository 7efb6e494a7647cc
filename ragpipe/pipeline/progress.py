"""Progress of a sync or a summarize run: a callback type and the bar on the terminal."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

# (stage, done, total): ("files", files done, files to read), then after each file stored
# ("chunks", chunks stored so far, files to read).
Progress = Callable[[str, int, int], None]


class ProgressBar:
    """A tqdm progress bar on stderr (when it is a terminal or forced), plus a callback."""

    def __init__(
        self, total: int, unit: str, callback: Progress | None, desc: str = "ingest",
        stage: str = "files",
    ) -> None:
        self.total, self.done, self.n_chunks = total, 0, 0
        self.started = time.monotonic()
        self.callback = callback
        self.stage = stage
        self._tqdm = None
        if total and (sys.stderr.isatty() or os.environ.get("RAGPIPE_PROGRESS") == "1"):
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)

    def update(self) -> None:
        """One more file done (the bar shows files/s, chunks and chunks/s)."""
        self.done += 1
        if self._tqdm:
            rate = self.n_chunks / max(time.monotonic() - self.started, 1e-9)
            self._tqdm.set_postfix({"chunks": self.n_chunks, "chunks/s": f"{rate:.1f}"},
                                   refresh=False)
            self._tqdm.update(1)
        if self.callback:
            self.callback(self.stage, self.done, self.total)

    def advance(self, postfix: dict[str, object] | None = None) -> None:
        """One more item done; ``postfix`` is shown on the bar (e.g. tokens/s)."""
        self.done += 1
        if self._tqdm:
            if postfix:
                self._tqdm.set_postfix(postfix, refresh=False)
            self._tqdm.update(1)
        if self.callback:
            self.callback(self.stage, self.done, self.total)

    def chunks(self, n: int) -> None:
        """Count ``n`` more chunks stored (shown on the bar, told to the callback)."""
        self.n_chunks += n
        if self.callback:
            self.callback("chunks", self.n_chunks, self.total)

    def note(self, text: str) -> None:
        """Print a line above the bar (nothing without a bar)."""
        if self._tqdm:
            self._tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        """Close the bar."""
        if self._tqdm:
            self._tqdm.close()
