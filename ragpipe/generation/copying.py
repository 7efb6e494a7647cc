"""Copy-constrained decoding: the answer must be a verbatim span of its passages."""

from __future__ import annotations

import re
from collections.abc import Sequence

_SPACES = re.compile(r"\s+")
# Typographic quotes and dashes match their plain forms: the model writes '"' for '“'.
_PLAIN = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
                        "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'",
                        "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "})


def plain(text: str) -> str:
    """Lower case, plain quotes and dashes, single spaces: how copies are compared."""
    return _SPACES.sub(" ", text.translate(_PLAIN).lower())


def variants(word: str) -> tuple[str, ...]:
    """Spellings whose first token can start ``word`` ("Not", " Not", "not", ...)."""
    first = word.split()[0] if word.split() else word
    forms = {first, first.lower(), first.capitalize(), first.upper()}
    return tuple(sorted(forms | {" " + f for f in forms}))


_CITE_CHARS = re.compile(r"^[\s\[\]\d,]*$")


def _at_word_start(needle: str, text: str) -> bool:
    """``needle`` occurs in ``text`` where no letter or digit precedes it.

    A copy starts at a word: "nomy" is in "economy", but a span may not begin there.
    """
    i = text.find(needle)
    while i >= 0:
        if i == 0 or not text[i - 1].isalnum() or not needle[0].isalnum():
            return True
        i = text.find(needle, i + 1)
    return False


class CopyConstraint:
    """Copy-constrained decoding: the answer must be a verbatim span of the given texts.

    Small models find the right passage text but paraphrase it on the way out ("3" for
    "three", "agricultural and commercial" for "commercial, scientific"), and then the
    answer neither matches the gold phrase nor can be checked against the passage. So at
    each step the most likely of the model's top ``candidates`` tokens that keeps the
    answer a substring of some passage (ignoring case and runs of white space) that
    starts at a word is taken.
    The span ends when the model itself would rather cite (``[``), break the line or
    stop, or after one sentence; then only citation markers ("[1]", "[2, 3]") may follow.
    With ``whole_sentence`` (a yes/no question, whose answer is the deciding sentence)
    a wish to cite or break the line does not end the span before its sentence ends:
    "Business class is allowed" is not the answer when the passage goes on "only when
    the flight is over 6 hours". A citation marker the model opened is closed when it
    would rather write "]" with more after it ("]." as one token).
    """

    candidates = 64
    max_tail = 8  # tokens of citation markers after the span

    def __init__(self, sources: Sequence[str], whole_sentence: bool = False) -> None:
        self.sources = [plain(s) for s in sources]
        self.whole_sentence = whole_sentence
        self.span = ""  # normalized copied text so far
        self.raw = ""  # the same, as written
        self.tail = -1  # -1 while copying, then the number of citation tokens written
        self.marks = ""  # the citation markers written

    def _fits(self, piece: str) -> str | None:
        if not piece or "\n" in piece or "\ufffd" in piece:
            return None  # a line break, or part of a character split over tokens
        cand = plain(self.span + piece).lstrip()
        if not cand:
            return cand
        return cand if any(_at_word_start(cand, s) for s in self.sources) else None

    def choose(self, ranked: Sequence[tuple[int, str]]) -> int | None:
        """The token to emit from (token, text) pairs best first; None ends the answer."""
        if not ranked:
            return None
        first_tok, first_text = ranked[0]
        if self.tail < 0:
            wants_end = first_text.lstrip().startswith("[") or "\n" in first_text
            # one sentence at most: a full stop after a lower-case word ends the span
            # ("J.I." or "U.S." do not)
            end = self.raw.rstrip()
            if self.whole_sentence and end[-1:] not in (".", "!", "?"):
                wants_end = False  # the deciding sentence goes on: keep copying it
            wants_end |= (
                end[-1:] in (".", "!", "?") and end[-2:-1].isalnum()
                and not end[-2:-1].isupper() and first_text[:1] == " "
            )
            if not (wants_end and self.span.strip()):
                for tok, text in ranked:
                    fit = self._fits(text)
                    if fit is not None and (fit or self.span):
                        self.span, self.raw = fit, self.raw + text
                        return tok
                if not self.span.strip():
                    return None  # nothing the model likes is in the passages
            self.tail = 0
        # citation markers only, and only while the model itself wants them
        if self.tail >= self.max_tail or not first_text.strip():
            return None
        if _CITE_CHARS.match(first_text):
            self.tail += 1
            self.marks += first_text
            return first_tok
        if self.marks.count("[") > self.marks.count("]"):
            for tok, text in ranked:  # close the marker ("[1" then "]." -> "[1]")
                if text.strip() == "]":
                    self.tail += 1
                    self.marks += text
                    return tok
        return None


