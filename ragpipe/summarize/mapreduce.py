"""Map-reduce over a document's chunks, each prompt fitted exactly to the model's budget.

    chunks --consecutive groups that fit--> map: notes per group, in order
    notes --consecutive groups that fit--> reduce: fewer notes ... until the summary is short

The budget is ``n_ctx - max_tokens`` counted with ``count_prompt_tokens`` on the fully
rendered prompt, as for answers (prompts.fit_prompt): a prompt that is counted to fit
does fit, whatever the document's length. A map prompt also reads at most
``group_tokens`` of document text: a small model summarizes a short part far better
than a long one. Only the generator contract's ``n_ctx``, ``count_prompt_tokens`` and
``stream`` are used, so every backend works.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datatypes import Chunk
from ..errors import RagpipeError
from ..generation import ThinkFilter, strip_think
from ..grounding import split_sentences
from .templates import (
    Message,
    instruction,
    map_messages,
    reduce_instruction,
    reduce_messages,
)

# A prompt token is rarely longer than this many characters: bounds the binary search.
_CHARS_PER_TOKEN_MAX = 32
# Visible pieces in a row without a letter or digit ("- - - -"): the model is stuck.
_JUNK_RUN = 16


class SummaryTooLong(RagpipeError, ValueError):
    """The smallest prompt does not fit the model's window."""


@dataclass
class Usage:
    """What the model calls of one summary cost."""

    map_calls: int = 0
    reduce_calls: int = 0
    prompt_tokens: int = 0
    generated: int = 0  # visible text pieces streamed (one per token for llama.cpp)
    largest_prompt: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"map_s": 0.0, "reduce_s": 0.0})


def _norm(sentence: str) -> str:
    """A sentence as compared for repetition: no bullet, no "Label:" lead, words only."""
    s = re.sub(r"^[\s\-*\u2022\d.)]+", "", sentence)
    s = re.sub(r"^\W*(?:\w+\W{0,2}){1,3}:\s+(?=\S)", "", s)
    return " ".join(re.findall(r"\w+", s.lower()))


def repeats_from(text: str) -> int | None:
    """Offset where ``text`` starts repeating itself, else None.

    Greedy decoding of a small model falls into loops: a sentence or line said before
    ("The threshold is EUR 1,000. Where ... The threshold is EUR 1,000."), or a phrase
    said three times in a row ("Form PR-9, Form PR-9, Form PR-9"). A summary never says
    the same thing twice, so the text is cut where the repetition starts.
    """
    m = _PHRASE_LOOP.search(text)
    if m:  # keep one copy, up to the clause boundary before the next
        cut = m.start(1) + len(m.group(1))
        stop = max(text.rfind(c, 0, cut) for c in ",;.!?\n")
        return stop + 1 if stop >= 0 else cut
    seen: set[str] = set()
    spans = split_sentences(text)
    complete = spans if text.endswith(("\n", ".", "!", "?")) else spans[:-1]
    for a, b in complete:
        key = _norm(text[a:b])
        if not key:
            continue
        if key in seen:
            return a
        seen.add(key)
    return None


_PHRASE_LOOP = re.compile(r"(\S.{9,99}?)(?:\s*\1){2,}", re.S)
# Lines of the prompt's own framing that a model echoes back.
_FRAMING = re.compile(
    r"^\s*(?:Document: .*|Notes on part \d+:|Summaries of \d+ documents:|#{1,6} .*)\s*$", re.M)


def drop_echo(text: str, echo: str) -> str:
    """``text`` without the prompt's framing and the sentences it repeats of ``echo``.

    ``echo`` is the prompt's instruction ("List the key facts of ..."); Markdown headings
    copied from the document go too (a summary has its own structure).
    """
    text = _FRAMING.sub("", text)
    said = _norm(echo)
    out, pos = [], 0
    for a, b in split_sentences(text):
        key = _norm(text[a:b])
        if len(key.split()) >= 4 and key in said:
            out.append(text[pos:a])
            pos = b
    out.append(text[pos:])
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


def as_prose(text: str) -> str:
    """A list of facts as paragraphs: bullets joined into sentences, blocks kept apart."""
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_BULLET.sub("", ln).strip() for ln in block.splitlines()]
        lines = [ln if ln[-1:] in ".!?:;" else ln + "." for ln in lines if ln]
        if lines:
            blocks.append(" ".join(lines))
    return "\n\n".join(blocks)


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")


def generate(gen: Any, messages: list[Message], max_tokens: int, usage: Usage,
             echo: str = "") -> str:
    """Stream one answer: at most ``max_tokens`` visible pieces, reasoning and loops cut.

    <think> blocks may use the rest of the window and never reach the text; sentences
    that repeat the prompt's instruction ``echo`` are removed (drop_echo).
    """
    prompt = gen.count_prompt_tokens(messages)
    usage.prompt_tokens += prompt
    usage.largest_prompt = max(usage.largest_prompt, prompt)
    room = max(max_tokens, gen.n_ctx - prompt)
    think = ThinkFilter()
    pieces: list[str] = []
    visible = junk = 0
    clean = 0  # length of the text up to its last piece with a letter or digit
    stream = gen.stream(messages, room)
    try:
        for piece in stream:
            text = think.feed(piece)
            if not text:
                continue
            pieces.append(text)
            visible += 1
            junk = 0 if re.search(r"\w", text) else junk + 1
            if not junk:
                clean = sum(map(len, pieces))
            if visible >= max_tokens or junk >= _JUNK_RUN:
                break
            if re.search(r"[.,;!?\n]", text):
                so_far = "".join(pieces)
                cut = repeats_from(so_far)
                if cut is not None:
                    pieces = [so_far[:cut].rstrip(" ,;")]
                    break
    finally:
        close = getattr(stream, "close", None)  # a generator: releases the model at once
        if close:
            close()
    usage.generated += visible
    text = "".join(pieces)
    if junk >= _JUNK_RUN:  # keep the sentence's own closing punctuation
        text = text[:clean] + re.sub(r"[^.!?)\]\"'].*", "", text[clean:], flags=re.S)
    text = strip_think(text + think.flush())
    cut = repeats_from(text + "\n")
    text = text[:cut].rstrip(" ,;") if cut is not None else text
    return drop_echo(text, echo)


def join_chunks(chunks: Sequence[Chunk]) -> str:
    """The text of consecutive chunks, with the overlap between neighbours read once."""
    out: list[str] = []
    prev: Chunk | None = None
    for c in chunks:
        text = c.text
        if prev is not None:
            if prev.page == c.page and c.start < prev.end <= c.end:
                text = c.text[prev.end - c.start :]
            elif prev.page != c.page:
                out.append("\n\n")
            elif c.start > prev.end:
                out.append("\n")
        out.append(text)
        prev = c
    return "".join(out).strip()


def fit_groups(n: int, count: Callable[[int, int, int], int], limit: int,
               chars: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ranges [i, j) covering 0..n, each the longest whose prompt fits ``limit``.

    ``count(k, i, j)`` is the exact size of the prompt of items i..j-1 as group k (from
    1), ``chars`` the items' lengths (to bound the search). Raises IndexError(i) when item
    i alone does not fit.
    """
    out: list[tuple[int, int]] = []
    i = 0
    while i < n:
        k = len(out) + 1
        if count(k, i, i + 1) > limit:
            raise IndexError(i)
        hi, total = i + 1, chars[i]
        while hi < n and total + chars[hi] <= limit * _CHARS_PER_TOKEN_MAX:
            total += chars[hi]
            hi += 1
        lo = i + 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(k, i, mid) <= limit:
                lo = mid
            else:
                hi = mid - 1
        out.append((i, lo))
        i = lo
    return out


def _halve(c: Chunk) -> tuple[Chunk, Chunk]:
    """A chunk cut in two at the white space nearest its middle (offsets kept exact)."""
    mid = len(c.text) // 2
    space = [m.start() for m in re.finditer(r"\s", c.text)]
    k = min(space, key=lambda s: abs(s - mid)) if space else mid
    k = k if 0 < k < len(c.text) else max(1, mid)
    return (Chunk(c.text[:k], c.page, c.start, c.start + k, c.ordinal, c.heading),
            Chunk(c.text[k:], c.page, c.start + k, c.end, c.ordinal, c.heading))


def _too_long(budget: int) -> SummaryTooLong:
    return SummaryTooLong(
        f"a summary prompt does not fit the model's window even with one line of text "
        f"({budget} tokens left): raise llm.n_ctx or lower summarize.max_tokens"
    )


def map_groups(gen: Any, title: str, chunks: Sequence[Chunk], style: str, custom: str | None,
               limit: int) -> list[list[Chunk]]:
    """The document's chunks in consecutive groups whose map prompts fit ``limit``.

    A chunk too long to fit alone (text the index's chunker never makes) is halved.
    """
    chunks = list(chunks)
    while True:
        def count(k: int, i: int, j: int) -> int:
            return gen.count_prompt_tokens(
                map_messages(title, join_chunks(chunks[i:j]), style, k, custom)
            )
        try:
            ranges = fit_groups(len(chunks), count, limit, [len(c.text) for c in chunks])
        except IndexError as exc:
            i = exc.args[0]
            if len(chunks[i].text) < 2:
                raise _too_long(limit) from None
            chunks[i : i + 1] = _halve(chunks[i])
            continue
        return [chunks[i:j] for i, j in ranges]


def notes_tokens(gen: Any, notes: Sequence[str]) -> int:
    """Tokens of ``notes`` as one text (with the template's few tokens of framing)."""
    return gen.count_prompt_tokens([{"role": "user", "content": "\n\n".join(notes)}])


def summarize_chunks(
    gen: Any, title: str, chunks: Sequence[Chunk], style: str, custom: str | None,
    max_tokens: int, group_tokens: int,
) -> tuple[str, Usage]:
    """Summarize a document from its chunks in order; returns the draft and what it cost.

    A document that fits one map prompt is summarized in one call. Otherwise each group
    of chunks gets notes (map), and notes are combined (reduce), as many levels as the
    budget needs, until one summary is left (``brief``) or the notes together are at
    most ``4 * max_tokens`` tokens (``detailed``, ``bullets``: then they are the summary,
    one paragraph per part, in the document's order). ``detailed`` is written as prose.
    """
    usage = Usage()
    budget = gen.n_ctx - max_tokens
    empty = gen.count_prompt_tokens(map_messages(title, "", style, part=99, custom=custom))
    if empty > budget:
        raise _too_long(budget)
    limit = min(budget, empty + group_tokens)
    t0 = time.monotonic()
    whole = map_messages(title, join_chunks(chunks), style, None, custom)
    if gen.count_prompt_tokens(whole) <= limit:
        usage.map_calls = 1
        notes = [generate(gen, whole, max_tokens, usage,
                          instruction(style, None, custom, len(join_chunks(chunks))))]
    else:
        notes = []
        for k, group in enumerate(map_groups(gen, title, chunks, style, custom, limit), 1):
            messages = map_messages(title, join_chunks(group), style, k, custom)
            notes.append(generate(gen, messages, max_tokens, usage,
                                  instruction(style, k, custom, len(join_chunks(group)))))
            usage.map_calls += 1
    usage.seconds["map_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    notes = [n for n in notes if n.strip()]
    while len(notes) > 1 and (style == "brief" or notes_tokens(gen, notes) > 4 * max_tokens):
        def count(k: int, i: int, j: int, level: list[str] = notes) -> int:
            return gen.count_prompt_tokens(reduce_messages(title, level[i:j], style, custom))
        try:
            ranges = fit_groups(len(notes), count, budget, [len(n) for n in notes])
        except IndexError:
            raise _too_long(budget) from None
        if len(ranges) == len(notes):  # one note per prompt: nothing would shrink
            raise _too_long(budget)
        merged = []
        for i, j in ranges:
            messages = reduce_messages(title, notes[i:j], style, custom)
            merged.append(generate(gen, messages, max_tokens, usage,
                                   reduce_instruction(style, custom)))
            usage.reduce_calls += 1
        notes = [n for n in merged if n.strip()]
    usage.seconds["reduce_s"] = time.monotonic() - t0
    text = "\n\n".join(notes)
    return (as_prose(text) if style == "detailed" and not custom else text), usage
