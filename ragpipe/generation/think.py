"""Reasoning blocks: <think>…</think> text that never reaches an answer, a stream or history."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)


def strip_think(text: str) -> str:
    """Remove <think>…</think> reasoning blocks (also an unterminated one at the end).

    Text before a closing tag without an opening one is reasoning too: some chat templates
    open the block in the prompt, so the model only writes ``</think>``.
    """
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.lstrip()


class ThinkFilter:
    """Separates streamed text into visible answer and <think> reasoning, piece by piece.

    ``feed`` returns the visible part of a piece, holding back a possible half tag, and
    ``thinking`` tells whether the piece just fed ended inside a reasoning block.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.thinking = False
        self._held = ""

    def feed(self, piece: str) -> str:
        """The visible text of ``piece``."""
        text, out = self._held + piece, []
        self._held = ""
        while text:
            tag = self.CLOSE if self.thinking else self.OPEN
            i = text.find(tag)
            if i >= 0:
                if not self.thinking:
                    out.append(text[:i])
                text = text[i + len(tag) :]
                self.thinking = not self.thinking
                continue
            keep = next((n for n in range(len(tag) - 1, 0, -1) if text.endswith(tag[:n])), 0)
            if not self.thinking:
                out.append(text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            break
        return "".join(out)

    def flush(self) -> str:
        """Text held back at the end of the stream (a '<thi' that never became a tag)."""
        held, self._held = self._held, ""
        return "" if self.thinking else held


