"""Checking an answer against its passages, and deciding whether to answer at all.

After the answer has streamed, ragpipe

1. removes citation markers that name no passage;
2. splits the answer into sentences and checks each cited sentence against its passage:
   the share of the sentence's content words found in the passage (light stemming, every
   number must appear verbatim), and the character span of the passage that supports it,
   as offsets into the page text so a UI can highlight it;
3. turns named signals (question coverage, support, token log-probabilities, the model's
   P("Not found") and its P("yes") as a judge) into a calibrated probability that the
   question is answerable from the passages (``confidence``): a logistic model fitted on
   a SQuAD v2 tuning slice, answerable vs unanswerable questions (README, Grounded
   answers, has the command, the data and the figures). The fitted default reads the
   judge alone: adding the other signals did not improve cross-validated figures. Below
   the threshold the draft is withheld and ragpipe says the documents do not contain it.

Everything here is pure Python over strings and Hits, so it is fast and testable without
a model; the model signals are passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .datatypes import Citation, Hit, Support

# ----- words -------------------------------------------------------------------------------------
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also many much one ones did does per via yes""".split()
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,:/]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_CITE_MARK = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
# A list's own numbering ("1.", "2)", "(3)", "b.") at the start of a claim: the writer's
# enumeration, not a number the passage has to state.
_ENUMERATOR = re.compile(r"^\s*(?:\(?\d{1,3}[.)]|\(?[a-z][.)]|[-*•])(?=\s|$)\s*")


def stem(word: str) -> str:
    """A light, dependable stem: lower case, no possessive, no plural/verb -s or -es."""
    w = word.lower()
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def content_words(text: str) -> list[str]:
    """Stemmed words of ``text`` that carry meaning (no stop words, no citation markers)."""
    text = _CITE_MARK.sub(" ", text)
    return [stem(w) for w in _WORD.findall(text) if w.lower() not in STOPWORDS]


def coverage(text: str, passage: str) -> float:
    """Share of ``text``'s distinct content words that occur in ``passage`` (0 when none)."""
    words = set(content_words(text))
    if not words:
        return 0.0
    return len(words & set(content_words(passage))) / len(words)


# ----- sentences and spans ---------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])*\s+|\n+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``.

    A citation right after a full stop stays with the sentence before it.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        # keep trailing citation markers, drop the whitespace
        seg_end = end - (len(m.group(0)) - len(m.group(0).rstrip()))
        if text[start:seg_end].strip():
            spans.append((start, seg_end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return [(a + (len(text[a:b]) - len(text[a:b].lstrip())), b) for a, b in spans]


def _passage_sentences(text: str) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for m in re.finditer(r"(?<=[.!?])\s+|\n+", text):
        if text[start : m.start()].strip():
            spans.append((start, m.start()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _phrase_pattern(claim: str) -> re.Pattern[str] | None:
    words = _WORD.findall(_CITE_MARK.sub(" ", claim))
    if not words:
        return None
    return re.compile(r"\W+".join(re.escape(w) for w in words), re.IGNORECASE)


@dataclass(frozen=True)
class SpanMatch:
    """How well one claim is supported by one passage, and where."""

    score: float  # 0..1: share of the claim's content words in the passage
    start: int  # span in the passage text
    end: int
    exact: bool = False  # the claim's words occur in the passage in order, verbatim
    numbers_ok: bool = True  # every number of the claim occurs in the passage


def support_span(claim: str, passage: str) -> SpanMatch:
    """Score ``claim`` against ``passage`` and locate the passage text that supports it."""
    pat = _phrase_pattern(claim)
    words = set(content_words(claim))
    numbers = set(_NUMBER.findall(_CITE_MARK.sub(" ", claim)))
    numbers_ok = numbers <= set(_NUMBER.findall(passage))
    if pat is not None:
        m = pat.search(passage)
        if m and (words or numbers):
            return SpanMatch(1.0, m.start(), m.end(), True, True)
    best = (0.0, 0, 0)
    if words:
        for a, b in _passage_sentences(passage):
            have = set(content_words(passage[a:b]))
            share = len(words & have) / len(words)
            if share > best[0]:
                best = (share, a, b)
    score = coverage(claim, passage) if words else 0.0
    if not numbers_ok:
        score = 0.0  # a number the passage does not state is never supported
    return SpanMatch(score, best[1], best[2], False, numbers_ok)


def complete_last_word(text: str, hits: Sequence[Hit]) -> str:
    """Finish a copied answer that stops inside a word ("The H" -> "The Hugues").

    Copy-constrained decoding can end mid-word when the model's next choice is not in the
    passage; the rest of that word is taken from the passage the copy came from.
    """
    claim = _CITE_MARK.sub("", text).rstrip()
    pat = _phrase_pattern(claim)
    if pat is None or not claim or not claim[-1].isalnum():
        return text
    for h in hits:
        m = pat.search(h.text)
        if m is None:
            continue
        end = m.end()
        while end < len(h.text) and (h.text[end].isalnum() or h.text[end] in "'-"):
            end += 1
        if end == m.end():
            return text
        return claim + h.text[m.end() : end] + text[len(claim) :]
    return text


# ----- checking an answer ----------------------------------------------------------------------
SUPPORT_THRESHOLD = 0.6  # share of content words; tuned on SQuAD v2 (README)
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


@dataclass(frozen=True)
class Checked:
    """An answer's text with invalid citations removed, its checked citations and summary."""

    text: str
    citations: tuple[Citation, ...]
    support: Support
    best_score: float  # support of the best-supported claim (0 without claims)


def remove_invalid(text: str, valid: int) -> str:
    """Drop citation markers that name no passage (n < 1 or n > valid), and their space."""

    def fix(m: re.Match[str]) -> str:
        nums = [p.strip() for p in m.group(1).split(",") if 1 <= int(p) <= valid]
        return f"[{', '.join(nums)}]" if nums else ""

    out = _CITE.sub(fix, text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def check_answer(
    text: str, hits: Sequence[Hit], threshold: float = SUPPORT_THRESHOLD
) -> Checked:
    """Check every cited sentence of ``text`` against the passage it cites.

    A sentence without a citation whose words are supported by a passage gets an
    ``inferred`` citation of the best such passage, so every supported claim points at
    its source; one that no passage supports is counted as uncited.
    """
    text = remove_invalid(text, len(hits))
    cites: list[Citation] = []
    uncited = 0
    best_score = 0.0
    for a, b in split_sentences(text):
        sentence = text[a:b]
        claim = _ENUMERATOR.sub("", _CITE_MARK.sub("", sentence)).strip()
        if not content_words(claim) and not _NUMBER.search(claim):
            continue  # nothing to check ("Yes." or a bare marker)
        nums = []
        for m in _CITE.finditer(sentence):
            nums += [int(p) for p in m.group(1).split(",") if int(p) not in nums]
        if nums:
            for n in nums:
                hit = hits[n - 1]
                sm = support_span(claim, hit.text)
                best_score = max(best_score, sm.score)
                cites.append(_citation(n, hit, sm, threshold, claim, inferred=False))
            continue
        matches = [(support_span(claim, h.text), i) for i, h in enumerate(hits, start=1)]
        if matches:
            sm, n = max(matches, key=lambda x: (x[0].score, x[0].exact, -x[1]))
            best_score = max(best_score, sm.score)
            if sm.score >= threshold:
                cites.append(_citation(n, hits[n - 1], sm, threshold, claim, inferred=True))
                continue
        uncited += 1
    supported = sum(1 for c in cites if c.supported)
    summary = Support(
        citations=len(cites),
        supported=supported,
        unsupported=len(cites) - supported,
        uncited_sentences=uncited,
    )
    return Checked(text, tuple(cites), summary, best_score)


def _citation(
    n: int, hit: Hit, sm: SpanMatch, threshold: float, claim: str, inferred: bool
) -> Citation:
    span = (hit.start + sm.start, hit.start + sm.end) if sm.end > sm.start else None
    return Citation(
        n, hit, supported=sm.score >= threshold, span=span, score=round(sm.score, 3),
        sentence=claim, inferred=inferred,
    )


# ----- the answerability signal ----------------------------------------------------------------
def question_coverage(
    words: Sequence[str], hits: Sequence[Hit], chunk_counts: Mapping[str, int], n_chunks: int
) -> float:
    """Best IDF-weighted share of the question's ``words`` found in one passage.

    ``words`` are the question's distinct content words (``content_words``). Each weighs
    its inverse chunk frequency in the index, log(1 + (N - n + 0.5) / (n + 0.5)), so a
    word found nowhere in the documents ("football" in an HR folder) weighs most and a
    common one ("team") little. "Who is the CEO's favourite football team?" covers 0.25
    of its words in the best passage but 0.06 of their weight; SQuAD v2 answerable
    questions were all at 0.17 or more (README: Grounded answers). Without words: 1.
    """
    if not words:
        return 1.0
    weight = {
        w: math.log(1 + (n_chunks - chunk_counts.get(w, 0) + 0.5) / (chunk_counts.get(w, 0) + 0.5))
        for w in words
    }
    total = sum(weight.values())
    best = 0.0
    for h in hits:
        found = set(content_words(h.text))
        best = max(best, sum(weight[w] for w in words if w in found) / total)
    return best


@dataclass(frozen=True)
class Calibration:
    """A logistic model over named signals: P(grounded) = sigmoid(bias + sum w * signal)."""

    bias: float
    weights: Mapping[str, float]
    threshold: float  # answer when P >= threshold

    def applies(self, signals: Mapping[str, float]) -> bool:
        """True when every signal the model reads was measured (the judge may be off)."""
        return all(k in signals for k in self.weights)

    def probability(self, signals: Mapping[str, float]) -> float:
        """The calibrated probability that the answer is grounded."""
        z = self.bias + sum(w * float(signals.get(k, 0.0)) for k, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


# Fitted with `python -m ragpipe.eval_answers --tune RUN.json` on a 200-question tuning
# slice of SQuAD v2 dev half-a (seed 0, offset 200; the report uses offset 0), Qwen2.5-
# Coder-0.5B. Of the signals measured there (AUC answerable vs unanswerable): the judge's
# P("yes") 0.72, P("Not found") as first token 0.66 (inverted), first-token log-prob 0.60,
# mean log-prob 0.58, retrieval score 0.57, question coverage (unweighted then) 0.55.
# Combinations fitted
# better in-sample but not in 2-fold cross-validation, so the judge alone decides; the
# threshold maximizes balanced accuracy (README, Grounded answers). It answers when P(yes) >= 0.31.
CALIBRATION = Calibration(bias=-3.6826, weights={"judge": 10.521}, threshold=0.4018)

# Calibrations per model and answer style, fitted by `python -m ragpipe.eval_answers --tune
# RUN.json --save` (README: Grounded answers): a model never inherits another's thresholds.
CALIBRATIONS_DIR = Path(__file__).parent / "calibrations"


def calibration_file(model_name: str, style: str) -> Path:
    """Where the calibration of ``model_name`` (its file name) in ``style`` is kept."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name.removesuffix(".gguf"))
    return CALIBRATIONS_DIR / f"{stem.lower()}.{style}.json"


def calibration_for(model_name: str, style: str) -> Calibration | None:
    """The calibration fitted for this model and style, or None when there is none."""
    path = calibration_file(model_name, style)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return Calibration(data["bias"], data["weights"], data["threshold"])
    if style == "extract" and "qwen2.5-coder-0.5b" in model_name.lower():
        return CALIBRATION  # fitted before calibrations were kept per model
    return None


def save_calibration(cal: Calibration, model_name: str, style: str, note: str) -> Path:
    """Write ``cal`` as the calibration of ``model_name`` in ``style``; returns the file."""
    path = calibration_file(model_name, style)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"bias": cal.bias, "weights": dict(cal.weights), "threshold": cal.threshold,
            "model": model_name, "style": style, "fitted": note}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def signals_for(
    coverage: float,
    hits: Sequence[Hit],
    checked: Checked,
    logprobs: Sequence[float] = (),
    judge: float | None = None,
    refusal_p: float | None = None,
) -> dict[str, float]:
    """The named signals the calibration reads (all in ranges that suit a linear model)."""
    lp = [x for x in logprobs if not math.isnan(x)]
    out = {
        "q_cover": coverage,  # question_coverage, as the relevance check measured it
        "support": checked.best_score,
        "cited": 1.0 if checked.citations else 0.0,
        "lp_mean": sum(lp) / len(lp) if lp else 0.0,
        "lp_min": min(lp) if lp else 0.0,
        "lp_first": lp[0] if lp else 0.0,
        "answer_words": float(len(content_words(checked.text))),
        "retrieval": hits[0].score if hits else 0.0,
    }
    if judge is not None:
        out["judge"] = judge
    if refusal_p is not None:
        out["refusal_p"] = refusal_p
    return out
