"""The answer stream: the generated text as it comes, then the checked Answer.

    fitted prompt --model--> tokens --drop <think>--> streamed text
    whole draft --check citations, support, confidence--> Answer (or the not-found sentence)

It abstains before generating when there are no passages or they do not cover the
question (``_abstain``; Pipeline.stream measures the coverage before it loads the
model), and after generating when the checks withhold the draft
(``_finish``); see AnswerStream.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from ..datatypes import Answer, Citation, Hit, Support
from ..generation import ThinkFilter, strip_think
from ..grounding import (
    SUPPORT_THRESHOLD,
    Checked,
    calibration_for,
    check_answer,
    complete_last_word,
    signals_for,
)
from ..prompts import (
    NOT_FOUND,
    REFUSAL,
    FittedPrompt,
    cited_numbers,
    compose_judge_messages,
    is_yes_no,
    judge_messages,
    remove_invalid_citations,
)
from ..safety import guard_answer

if TYPE_CHECKING:
    from .pipeline import Pipeline

# What an answer lacks when its backend cannot do something (Generator.capabilities),
# recorded in Answer.degraded and shown by `ask --explain` and the web page.
DEGRADED = {
    "judge": "judge unavailable for this backend: the calibrated abstention is off, only "
             "the support check can withhold the answer",
    "logprobs": "token log-probabilities unavailable for this backend: not recorded",
    "copy": "copy-constrained extraction unavailable for this backend: the answer may "
            "paraphrase its passage",
}


class AnswerStream:
    """Iterates the answer's text as it is generated; ``answer`` is set when it ends.

    The passages (``hits``) are known before the first token, so a UI can show them early.
    The checks (citations, support, the calibrated abstention) run after the last token,
    so they never delay the first one; when they withhold the answer, ``answer.text`` is
    the not-found sentence, not what was streamed (a UI replaces the streamed text).
    Reasoning in <think> blocks is not streamed and not counted in ``llm.max_tokens``.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        question: str,
        fitted: FittedPrompt,
        t0: float,
        query: str | None = None,
        also_retrieved: tuple[Hit, ...] = (),
        coverage: float | None = None,
    ):
        """``coverage``: the passages' question coverage, from Pipeline.stream.

        Below ``answer.min_question_coverage`` the stream says "not found" at once.
        """
        self.pipeline = pipeline
        self.question = question
        self.query = query or question
        self.also_retrieved = also_retrieved
        self.fitted = fitted
        self.hits = fitted.used
        self._t0 = t0
        self.coverage = coverage
        self._answer: Answer | None = None
        self._report: dict[str, float] = {}  # what the generator measured (refusal_p)
        self._degraded: list[str] = []  # what the backend could not do (DEGRADED)

    def __iter__(self) -> Iterator[str]:
        settings = self.pipeline.settings
        a = settings.answer
        if not self.hits:
            self._abstain(Reason.NO_PASSAGES)
            yield NOT_FOUND
            return
        if self.coverage is not None and self.coverage < a.min_question_coverage:
            self._abstain(Reason.NOT_RELEVANT)
            yield NOT_FOUND
            return
        if a.style == "compose":
            yield from self._composed()
            self._guard()
            return
        gen = self.pipeline.generator
        visible_max = settings.llm.max_tokens
        # Reasoning may use the whole window; the visible answer stops at llm.max_tokens.
        room = max(visible_max, gen.n_ctx - self.fitted.tokens)
        caps = gen.capabilities
        extract = a.style == "extract"
        if extract and not caps.copy_constraint:
            self._degraded.append(DEGRADED["copy"])
        if caps.token_logprobs:
            copy = extract and caps.copy_constraint
            tokens: Iterator[tuple[str, float]] = gen.stream_scored(
                self.fitted.messages, room,
                copy_from=[h.text for h in self.hits] if copy else (),
                refusal=REFUSAL if copy else "", report=self._report,
                whole_sentence=copy and is_yes_no(self.question),
            )
        else:
            self._degraded.append(DEGRADED["logprobs"])
            tokens = ((t, float("nan")) for t in gen.stream(self.fitted.messages, room))
        think = ThinkFilter()
        pieces: list[str] = []
        logprobs: list[float] = []
        n_visible = n_think = 0
        first = None
        try:
            for piece, logprob in tokens:
                was_thinking = think.thinking
                text = think.feed(piece)
                if was_thinking or think.thinking:
                    n_think += 1
                else:
                    n_visible += 1
                    logprobs.append(logprob)
                pieces.append(piece)
                if text:
                    if first is None:
                        first = time.monotonic() - self._t0
                    yield text
                if n_visible >= visible_max:
                    break
            tail = think.flush()
            if tail:
                yield tail
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()  # releases the model's lock at once
        self._finish("".join(pieces), n_visible, first, logprobs, n_think)
        self._guard()

    def _guard(self) -> None:
        """Every answer leaves through here: links, images and HTML are neutralized.

        Whatever the passages told the model to write (safety.py). A checked answer whose
        every citation lost its support that way (an injected link was all it said) is
        withheld like any unsupported answer.
        """
        assert self._answer is not None
        ans = guard_answer(self._answer)
        if (self.pipeline.settings.answer.check and ans.found and ans.citations
                and not ans.support.supported):
            ans = dataclasses.replace(
                ans, text=NOT_FOUND, citations=(), found=False,
                abstain_reason=Reason.UNSUPPORTED.value, withheld=ans.text,
            )
        self._answer = ans

    def _composed(self) -> Iterator[str]:
        """The "compose" style: the passages' own sentences that answer, then the judge.

        The composed text needs no model, so it streams at once; the model then judges
        whether it answers the question (one short turn), and ``decide`` withholds it
        when the calibrated confidence is too low.
        """
        a = self.pipeline.settings.answer
        comp = self.pipeline.compose(self.query, self.hits)
        first = time.monotonic() - self._t0
        timings = {"first_token_s": first}
        if not comp.text:
            self._abstain(Reason.UNSUPPORTED)
            yield NOT_FOUND
            return
        yield comp.text
        timings["compose_s"] = first
        checked = check_answer(comp.text, self.hits)
        judge = None
        # The judge decides only through a calibration fitted for this model in this style
        # (or a threshold set by hand, as tuning runs do); without one it is not asked and
        # the model is not even loaded: the composed text needs none.
        name = self.pipeline.model_name()
        wanted = a.min_confidence >= 0 or calibration_for(name, "compose") is not None
        if a.check and a.judge and wanted:
            gen = self.pipeline.generator
            if gen.capabilities.judge:
                judge = gen.yes_probability(compose_judge_messages(self.query, comp.text))
            if judge is None:
                self._degraded.append(DEGRADED["judge"])
        signals = signals_for(
            1.0 if self.coverage is None else self.coverage, self.hits, checked, (), judge
        )
        signals["unit_best"] = comp.best
        confidence, threshold = self._confidence(signals)
        reason = Reason.ANSWERED
        if a.check:
            reason = decide(False, checked, confidence, threshold, comp.best, a.min_unit_score)
        self._answer = self._answer_from(checked, reason, signals, confidence, timings)

    def _answer_from(
        self,
        checked: Checked,
        reason: Reason,
        signals: dict[str, float],
        confidence: float | None,
        timings: dict[str, float],
        refused: bool = False,
        **extra: object,
    ) -> Answer:
        support = Support(
            checked.support.citations, checked.support.supported, checked.support.unsupported,
            checked.support.uncited_sentences,
            None if confidence is None else round(confidence, 4),
        )
        timings["total_s"] = time.monotonic() - self._t0
        return Answer(
            question=self.question, hits=self.hits, dropped=self.fitted.dropped,
            prompt_tokens=self.fitted.tokens, timings=timings, query=self.query,
            token_parts=dict(self.fitted.parts), also_retrieved=self.also_retrieved,
            text=NOT_FOUND if reason else checked.text,
            citations=() if reason else checked.citations,
            found=not reason,
            support=support,
            abstain_reason=reason.value,
            withheld=checked.text if reason and not refused else "",
            signals=signals,
            degraded=tuple(self._degraded),
            **extra,  # type: ignore[arg-type]
        )

    def _abstain(self, reason: Reason) -> None:
        elapsed = time.monotonic() - self._t0  # the not-found text is the first token
        self._answer = Answer(
            question=self.question,
            text=NOT_FOUND,
            citations=(),
            hits=self.hits,
            dropped=self.fitted.dropped,
            prompt_tokens=self.fitted.tokens,
            found=False,
            timings={"first_token_s": elapsed, "total_s": elapsed},
            abstain_reason=reason.value,
            query=self.query,
            token_parts=dict(self.fitted.parts),
            also_retrieved=self.also_retrieved,
            signals={} if self.coverage is None else {"q_cover": self.coverage},
        )

    def _finish(
        self,
        raw: str,
        n_tokens: int,
        first: float | None,
        logprobs: Sequence[float] = (),
        n_think: int = 0,
    ) -> None:
        a = self.pipeline.settings.answer
        draft = strip_think(raw).strip()
        timings = {"generate_s": time.monotonic() - self._t0}
        if first is not None:
            timings["first_token_s"] = first
        said = draft.lower()
        refused = (
            not draft
            or NOT_FOUND.lower().rstrip(".") in said
            or said.startswith(REFUSAL.lower().rstrip("."))
        )
        common = dict(
            question=self.question, hits=self.hits, dropped=self.fitted.dropped,
            prompt_tokens=self.fitted.tokens, answer_tokens=n_tokens, timings=timings,
            query=self.query, token_parts=dict(self.fitted.parts), think_tokens=n_think,
            also_retrieved=self.also_retrieved,
        )
        if not a.check:
            text = remove_invalid_citations(draft, len(self.hits))
            cites = tuple(Citation(n, self.hits[n - 1]) for n in cited_numbers(text))
            timings["total_s"] = time.monotonic() - self._t0
            self._answer = Answer(
                text=text, citations=cites, found=not refused,
                abstain_reason="model" if refused else "", degraded=tuple(self._degraded),
                **common,  # type: ignore[arg-type]
            )
            return
        if a.style == "extract":
            draft = complete_last_word(draft, self.hits)
        checked = check_answer(draft, self.hits)
        judge = None
        gen = self.pipeline.generator
        if a.judge and not refused:
            if gen.capabilities.judge:
                judge = gen.yes_probability(judge_messages(self.fitted.messages))
            if judge is None:
                self._degraded.append(DEGRADED["judge"])
        signals = signals_for(
            1.0 if self.coverage is None else self.coverage, self.hits, checked, logprobs, judge,
            self._report.get("refusal_p"),
        )
        confidence, threshold = self._confidence(signals)
        reason = decide(refused, checked, confidence, threshold)
        self._answer = self._answer_from(
            checked, reason, signals, confidence, timings, refused,
            answer_tokens=n_tokens, think_tokens=n_think,
        )
        timings["check_s"] = timings["total_s"] - timings["generate_s"]

    def _confidence(self, signals: dict[str, float]) -> tuple[float | None, float]:
        """Calibrated P(answerable) for this model and style, and the threshold to answer.

        Without the signals the calibration was fitted on (judge off, a backend that
        cannot give it, or no calibration for this model) there is no confidence: then
        only the support check can withhold.
        """
        a = self.pipeline.settings.answer
        calibration = calibration_for(self.pipeline.model_name(), a.style)
        confidence = (
            calibration.probability(signals)
            if calibration is not None and calibration.applies(signals) else None
        )
        threshold = a.min_confidence if a.min_confidence >= 0 else (
            calibration.threshold if calibration is not None else 0.5
        )
        return confidence, threshold

    @property
    def answer(self) -> Answer:
        """The finished Answer (iterate the stream first)."""
        if self._answer is None:
            raise RuntimeError("iterate the stream to the end before reading .answer")
        return self._answer


class Reason(StrEnum):
    """Why ragpipe answered "not found" (ANSWERED: it did not)."""

    ANSWERED = ""
    NO_PASSAGES = "no passages"  # retrieval found nothing
    NOT_RELEVANT = "not relevant"  # no passage covers the question's rare words
    MODEL = "model"  # the model itself said the passages do not answer
    UNSUPPORTED = "unsupported"  # no passage backs the answer's text
    UNCERTAIN = "uncertain"  # calibrated confidence below the threshold


def decide(
    refused: bool,
    checked: Checked,
    confidence: float | None,
    threshold: float,
    unit_best: float | None = None,
    min_unit_score: float = 0.0,
) -> Reason:
    """The one decision to answer or to say "not found", after the answer was drafted.

    The relevance gate (``NO_PASSAGES``, ``NOT_RELEVANT``) runs earlier, before the model
    is asked. Without a confidence (no judge, or a backend that cannot give one) only the
    support check can withhold. ``unit_best`` is a composed answer's best unit score
    (compose.py): below ``min_unit_score`` no sentence is close to the question.
    """
    if refused:
        return Reason.MODEL
    if unit_best is not None and unit_best < min_unit_score:
        return Reason.NOT_RELEVANT  # no sentence of the passages is close to the question
    if checked.best_score < SUPPORT_THRESHOLD:
        return Reason.UNSUPPORTED  # no passage backs the draft: never shown as an answer
    if confidence is not None and confidence < threshold:
        return Reason.UNCERTAIN
    return Reason.ANSWERED
