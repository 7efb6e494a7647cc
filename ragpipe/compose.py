"""Answers composed from the documents' own sentences.

Employees ask for lists, procedures, rules with their conditions and several things at
once. A small model asked to write the answer drops items, loses qualifiers and numbers,
or copies one phrase; asked to copy one phrase, it answers "8 days" to "how many days of
annual leave do I get, and can I carry them over?". So the answer's body is *selected*,
not written: the passages are split into units (sentences, list items with the line that
introduces them, table rows with their header), each unit is scored against the question,
and the best units are given back verbatim, in document order, with their citations:

    passages --split--> units --score against the question--> selected units
             --complete lists and tables--> answer text, one citation per passage

A unit's score is the cosine of its embedding with the question's (the same embedder as
retrieval), blended with the rarity-weighted share of the question's words it holds. The
best unit anchors the answer; others join when they score close to it. A list or table
is never cut: when its lead-in line or one of its items is chosen, the whole block comes
with it (lists and procedures come back whole and in order). Every sentence of the result
is verbatim in its passage, so the citation check finds its exact span.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .datatypes import Hit
from .grounding import content_words

# A list item: "- x", "* x", "• x", "1. x", "1) x", "a) x" (not a section number "1.1 x").
_ITEM = re.compile(r"^(\s*)(?:[-*•–]|\d{1,2}[.)]|[a-z][.)])\s+(?=\S)")
_SECTION_NO = re.compile(r"^\s*\d+(?:\.\d+)+\s")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
_MD_HEADING = re.compile(r"^\s*#{1,6}\s")
_UNDERLINE = re.compile(r"^\s*[-=]{3,}\s*$")


@dataclass(frozen=True)
class Unit:
    """A piece of a passage that can stand in an answer: a sentence, list item or table row."""

    passage: int  # index of the passage in the list given to ``split_units``
    start: int  # offsets into the passage's text
    end: int
    # "sentence", "lead" (introduces a list), "item", "row", "header" (of a pipe table),
    # "labels" (of a table whose rows name their columns)
    kind: str
    block: int = -1  # list or table it belongs to (its lead-in, items; header, rows)
    context: str = ""  # the heading line above it in the passage, if any

    def text(self, passages: Sequence[Hit]) -> str:
        """The unit's text as it stands in its passage."""
        return passages[self.passage].text[self.start : self.end]


def merge_adjacent(hits: Sequence[Hit]) -> list[Hit]:
    """Overlapping or touching chunks of one page joined into one passage, best first.

    Chunks overlap by design, and a sentence cut at a chunk's edge is a fragment in each;
    joined, it is whole again. The joined passage keeps the best chunk's id and score,
    its rank, and exact offsets (``page_text[start:end] == text`` still holds).
    """
    merged: list[Hit] = []
    for h in hits:
        for i, m in enumerate(merged):
            if (m.source, m.page) != (h.source, h.page):
                continue
            if h.start <= m.end and m.start <= h.end:
                merged[i] = _join(m, h)
                break
        else:
            merged.append(h)
    # a join can make two earlier passages touch; repeat until stable
    return merged if len(merged) == len(hits) else merge_adjacent(merged)


def _join(a: Hit, b: Hit) -> Hit:
    first, second = (a, b) if a.start <= b.start else (b, a)
    text = first.text + second.text[max(0, first.end - second.start):]
    if second.end <= first.end:
        text = first.text
    return dataclasses.replace(
        a, text=text, start=first.start, end=max(first.end, second.end),
        score=max(a.score, b.score),
    )


def _lines(text: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def split_units(passages: Sequence[Hit]) -> list[Unit]:
    """Every passage cut into sentences, list items and table rows, with their blocks.

    Lines that carry on an item or a wrapped paragraph (plain text wraps at ~75
    characters) are joined to it; headings and table rules are left out.
    """
    units: list[Unit] = []
    block = 0
    for p, hit in enumerate(passages):
        text = hit.text
        spans = _lines(text)
        i = 0
        list_block = -1  # the block of the list being read (-1: none)
        table_block = -1
        context = ""
        while i < len(spans):
            a, b = spans[i]
            line = text[a:b]
            if not line.strip() or _MD_HEADING.match(line) or _UNDERLINE.match(line):
                if not line.strip() and list_block >= 0:
                    # a blank line ends a list unless an item follows it
                    nxt = next((text[x:y] for x, y in spans[i + 1 :] if text[x:y].strip()), "")
                    if not _ITEM.match(nxt):
                        list_block = -1
                table_block = -1 if not line.strip() else table_block
                i += 1
                continue
            nxt_line = text[spans[i + 1][0] : spans[i + 1][1]] if i + 1 < len(spans) else ""
            labelled = table_block >= 0 and _LABELLED_ROW.match(line)
            if line.lstrip().startswith("|") or labelled or (
                " | " in line and _LABELLED_ROW.match(nxt_line)
            ):
                if _TABLE_RULE.match(line.replace("|", "", 1)):
                    i += 1
                    continue
                # "labels": the header line of a table whose rows name their columns
                kind = "row" if table_block >= 0 else (
                    "header" if line.lstrip().startswith("|") else "labels"
                )
                if table_block < 0:
                    block += 1
                    table_block = block
                units.append(Unit(p, a + _indent(line), b, kind, table_block, context))
                i += 1
                continue
            table_block = -1
            if _is_heading(line, nxt_line) or _is_numbered_title(line, nxt_line):
                context = line.strip()
                list_block = -1
                i += 1
                continue
            m = _ITEM.match(line)
            # how far the unit's own lines go: continuation lines are indented further
            j = i + 1
            base = len(m.group(1)) if m else _indent(line)
            while j < len(spans):
                nxt = text[spans[j][0] : spans[j][1]]
                if (not nxt.strip() or _ITEM.match(nxt) or _SECTION_NO.match(nxt)
                        or nxt.lstrip().startswith("|") or _MD_HEADING.match(nxt)
                        or _UNDERLINE.match(nxt)):
                    break
                if m and _indent(nxt) <= base and not nxt.lstrip()[:1].islower():
                    break
                j += 1
            start, end = a + _indent(line), spans[j - 1][1]
            if m:
                if list_block < 0:
                    block += 1
                    list_block = block
                units.append(Unit(p, start, end, "item", list_block, context))
            else:
                list_block = -1
                para = text[start:end]
                sentences = _sentences(para)
                for k, (s, e) in enumerate(sentences):
                    last = k == len(sentences) - 1
                    if last and para[s:e].rstrip().endswith(":"):
                        block += 1
                        list_block = block
                        units.append(
                            Unit(p, start + s, start + e, "lead", list_block, context)
                        )
                    else:
                        units.append(Unit(p, start + s, start + e, "sentence", -1, context))
            i = j
    return _mark_fragments(units, passages)


def _mark_fragments(units: list[Unit], passages: Sequence[Hit]) -> list[Unit]:
    """Sentences cut by a passage's edge become "fragment" units, never answered with.

    A passage that starts inside a sentence begins with a lower-case word or a comma; one
    that stops inside a sentence ends without a full stop.
    """
    out = list(units)
    for p in range(len(passages)):
        idx = [i for i, u in enumerate(out) if u.passage == p]
        if not idx:
            continue
        first, last = out[idx[0]], out[idx[-1]]
        head = first.text(passages).lstrip()[:1]
        if first.kind == "sentence" and (head.islower() or head in ",;)"):
            out[idx[0]] = dataclasses.replace(first, kind="fragment")
        tail = last.text(passages).rstrip()[-1:]
        if last.kind == "sentence" and tail not in '.!?:;)"\'':
            out[idx[-1]] = dataclasses.replace(out[idx[-1]], kind="fragment")
    return out


# A row as ingest renders tables (ingest.text.render_rows): "Column: value; Column: value".
_LABELLED_ROW = re.compile(r"^[^:;|]{1,60}: [^;]*(?:; [^:;|]{1,60}: |$)")


def _is_heading(line: str, next_line: str) -> bool:
    """A title line: short, no sentence end, standing alone (a blank line after it)."""
    words = line.split()
    if not words or len(words) > 10 or line.rstrip()[-1:] in ".:;!?,":
        return False
    return not next_line.strip() or bool(_UNDERLINE.match(next_line))


_NUMBERED = re.compile(r"^\s*\d{1,2}(?:\.\d{1,2})*\.?\s+\S")


def _is_numbered_title(line: str, next_line: str) -> bool:
    """A numbered section title ("9. Travel insurance and safety") with text under it.

    Told apart from a numbered list item: no sentence end, at most eight words, and the
    next line is not another numbered line.
    """
    words = line.split()
    return (
        bool(_NUMBERED.match(line)) and 2 <= len(words) <= 9
        and line.rstrip()[-1:] not in ".:;!?,"
        and not _NUMBERED.match(next_line) and bool(next_line.strip())
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _sentences(para: str) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in _SENTENCE.finditer(para):
        if para[pos : m.start()].strip():
            out.append((pos, m.start()))
        pos = m.end()
    if para[pos:].strip():
        out.append((pos, len(para.rstrip())))
    return out


@dataclass(frozen=True)
class Composition:
    """The selected units and the answer text built from them."""

    text: str
    units: tuple[Unit, ...]
    scores: tuple[float, ...]  # of the selected units, as scored
    best: float  # the anchor unit's score (0 without units)
    passages_used: tuple[int, ...]  # passage indexes cited, in the order they appear


@dataclass(frozen=True)
class ComposeConfig:
    """How close to the best unit another must score to join, and how long answers get."""

    margin: float = 0.10  # join when score >= best - margin
    tight: float = 0.08  # ... and, unless it adds a question word, score >= best - tight
    floor: float = 0.25  # and at least this
    max_units: int = 5  # scored units chosen (list and table blocks complete them)
    max_block_items: int = 12  # longest list or table given whole
    lexical_weight: float = 0.35  # share of the rarity-weighted word overlap in a unit's score


def unit_texts(passages: Sequence[Hit], units: Sequence[Unit]) -> list[str]:
    """What each unit is scored as: its text, its heading and its list's lead-in.

    A list item or table row is read with the line that introduces it, so "- gloves" is
    read as PPE one must wear.
    """
    lead_of: dict[int, str] = {}
    for u in units:
        if u.kind in ("lead", "header", "labels") and u.block not in lead_of:
            lead_of[u.block] = u.text(passages)
    texts = []
    for u in units:
        t = u.text(passages)
        if u.kind in ("item", "row") and u.block in lead_of:
            t = f"{lead_of[u.block]} {t}"
        heading = u.context or passages[u.passage].heading
        texts.append(f"{heading}: {t}" if heading else t)
    return texts


def score_units(
    question: str,
    texts: Sequence[str],
    vectors: np.ndarray,
    query_vector: np.ndarray,
    word_weight: Mapping[str, float],
    lexical_weight: float,
) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Each unit's score for ``question``, and the question words it holds.

    The score is the cosine of the unit's vector with the question's, blended with the
    share of the question's words (weighted by rarity) the unit holds.
    """
    if not len(texts):
        return np.zeros(0), []
    cos = vectors @ query_vector
    words = list(dict.fromkeys(content_words(question)))
    total = sum(word_weight.get(w, 0.0) for w in words)
    lex = np.zeros(len(texts))
    covers = []
    for i, t in enumerate(texts):
        have = set(content_words(t))
        hit_words = frozenset(w for w in words if w in have)
        covers.append(hit_words)
        if total > 0:
            lex[i] = sum(word_weight.get(w, 0.0) for w in hit_words) / total
    return (1 - lexical_weight) * cos + lexical_weight * lex, covers


# A question that asks several things: "how long …, how often …, and where …?",
# "how many days do I get, and can I carry them over?", or two sentences.
_PART_BREAK = re.compile(
    r"(?:[?;]\s+|,\s*(?:and\s+)?|\s+and\s+)(?=(?:how|what|which|who|whom|where|when|why|"
    r"can|could|do|does|did|is|are|was|were|will|would|should|must|may|if)\b)",
    re.IGNORECASE,
)


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks several things (the question itself when one)."""
    parts = [p.strip(" ,;?") for p in _PART_BREAK.split(question.strip())]
    parts = [p for p in parts if len(content_words(p)) >= 1]
    return parts if len(parts) > 1 else [question]


def idf_weights(words: Sequence[str], counts: Mapping[str, int], n: int) -> dict[str, float]:
    """BM25-style inverse document frequency of each word over ``n`` chunks."""
    return {w: math.log(1 + (n - counts.get(w, 0) + 0.5) / (counts.get(w, 0) + 0.5))
            for w in words}


def select(
    units: Sequence[Unit],
    scores: np.ndarray,
    config: ComposeConfig,
    covers: Sequence[frozenset[str]] | None = None,
    anchors: Sequence[int] = (),
) -> list[int]:
    """Indexes of the units to answer with: the best, those close to it, whole blocks.

    Past the best unit, another joins when it scores within ``config.margin`` of it and
    either scores within ``config.tight`` too or holds a question word (``covers``, per
    unit) that the units chosen so far lack: a second part of the question gets its
    answer, a near-repeat of the first part does not.
    """
    usable = [i for i, u in enumerate(units) if u.kind != "fragment"]
    if not usable:
        return []
    order = sorted(usable, key=lambda i: -scores[i])
    best = float(scores[order[0]])
    chosen: list[int] = []
    covered: set[str] = set()
    for i in order:
        if len(chosen) >= config.max_units:
            break
        if scores[i] < max(best - config.margin, config.floor) and chosen:
            break
        new = covers[i] - covered if covers is not None else frozenset()
        if chosen and covers is not None and scores[i] < best - config.tight and not new:
            continue
        chosen.append(i)
        if covers is not None:
            covered |= covers[i]
    chosen += [i for i in anchors if i not in chosen]
    out = set(chosen)
    rows_of: dict[int, int] = {}
    for i in chosen:
        if units[i].kind == "row":
            rows_of[units[i].block] = rows_of.get(units[i].block, 0) + 1
    for i in chosen:
        u = units[i]
        if u.block < 0:
            continue
        members = [j for j, v in enumerate(units) if v.block == u.block and v.kind != "fragment"]
        if u.kind == "row" and rows_of[u.block] < 2:
            # a row stands for itself; a pipe table's row needs its header to be read
            out.update(j for j in members if units[j].kind == "header")
        elif len(members) <= config.max_block_items + 1:
            out.update(members)
    return sorted(out)


def render(passages: Sequence[Hit], units: Sequence[Unit], picked: Sequence[int],
           scores: np.ndarray) -> tuple[str, tuple[int, ...]]:
    """The answer text: per passage (best first), its units in document order, cited.

    Sentences run on as prose; a list's lead-in ends its line and items follow as "- "
    lines; table rows keep their header. Each passage's part ends with its marker [n].
    """
    with_rows = {units[i].block for i in picked if units[i].kind == "row"}
    picked = [i for i in picked if units[i].kind != "header" or units[i].block in with_rows]
    by_passage: dict[int, list[int]] = {}
    for i in picked:
        by_passage.setdefault(units[i].passage, []).append(i)
    ranked = sorted(by_passage, key=lambda p: -max(scores[i] for i in by_passage[p]))
    parts = []
    for p in ranked:
        idx = sorted(by_passage[p], key=lambda i: units[i].start)
        lines: list[str] = []
        prose: list[str] = []
        for i in idx:
            u = units[i]
            t = " ".join(u.text(passages).split())
            if u.kind in ("item", "row", "header", "labels"):
                if prose:
                    lines.append(" ".join(prose))
                    prose = []
                if u.kind == "item":
                    t = _ITEM.sub("", t, count=1)
                    lines.append(f"- {t}")
                else:
                    lines.append(t)
            elif u.kind == "lead":
                prose.append(t)
                lines.append(" ".join(prose))
                prose = []
            else:
                prose.append(t)
        if prose:
            lines.append(" ".join(prose))
        lines[-1] = f"{lines[-1]} [{p + 1}]"
        parts.append("\n".join(lines))
    return "\n\n".join(parts), tuple(p for p in ranked)


def compose(
    question: str,
    passages: Sequence[Hit],
    embed: Callable[[Sequence[str]], np.ndarray],
    embed_query: Callable[[str], np.ndarray],
    word_weight: Mapping[str, float],
    config: ComposeConfig | None = None,
) -> Composition:
    """Select the passages' units that answer ``question`` and write them out, cited.

    A question of several parts ("how many days …, and can I carry them over?") is also
    scored part by part, and each part's best unit joins the answer: every part gets its
    answer even when one part's units outscore the other's.
    """
    config = config or ComposeConfig()
    units = split_units(passages)
    if not units:
        return Composition("", (), (), 0.0, ())
    texts = unit_texts(passages, units)
    vectors = embed(texts)
    scores, covers = score_units(question, texts, vectors, embed_query(question), word_weight,
                                 config.lexical_weight)
    anchors = []
    parts = question_parts(question)
    if len(parts) > 1:
        for part in parts:
            part_scores, _ = score_units(part, texts, vectors, embed_query(part), word_weight,
                                         config.lexical_weight)
            usable = [i for i, u in enumerate(units) if u.kind != "fragment"]
            if usable:
                best = max(usable, key=lambda i: part_scores[i])
                if part_scores[best] >= config.floor:
                    anchors.append(best)
    picked = select(units, scores, config, covers, anchors)
    if not picked:
        return Composition("", (), (), 0.0, ())
    text, used = render(passages, units, picked, scores)
    return Composition(text, tuple(units[i] for i in picked),
                       tuple(float(scores[i]) for i in picked), float(scores.max()), used)
