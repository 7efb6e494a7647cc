"""The answer stream: the generated text as it comes, then the checked Answer.

    fitted prompt --model--> tokens --drop <think>--> streamed text
    whole draft --check citations, support, confidence--> Answer (or the not-found sentence)

It abstains before generating when there are no passages or they do not cover the
question (``_abstain``; Pipeline.stream measures the coverage before it loads the
model), and after generating when the checks withhold the draft
(``_finish``); see AnswerStream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ..datatypes import Answer, Citation, Hit, Support
from ..generation import ThinkFilter, strip_think
from ..grounding import (
    CALIBRATION,
    SUPPORT_THRESHOLD,
    check_answer,
    complete_last_word,
    signals_for,
)
from ..prompts import (
    NOT_FOUND,
    REFUSAL,
    FittedPrompt,
    cited_numbers,
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
            self._abstain("no passages")
            yield NOT_FOUND
            return
        if self.coverage is not None and self.coverage < a.min_question_coverage:
            self._abstain("not relevant")
            yield NOT_FOUND
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
        # Checked or not, every generated answer leaves through here: links, images and HTML
        # are neutralized (safety.py), whatever the passages told the model to write.
        assert self._answer is not None
        self._answer = guard_answer(self._answer)

    def _abstain(self, reason: str) -> None:
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
            abstain_reason=reason,
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
        # Without the signals it was fitted on (judge off, or a generator without it) the
        # calibration does not apply: then only the support check can withhold.
        confidence = CALIBRATION.probability(signals) if CALIBRATION.applies(signals) else None
        threshold = a.min_confidence if a.min_confidence >= 0 else CALIBRATION.threshold
        if refused:
            reason = "model"
        elif checked.best_score < SUPPORT_THRESHOLD:
            reason = "unsupported"  # no passage backs the draft: never shown as an answer
        elif confidence is not None and confidence < threshold:
            reason = "uncertain"
        else:
            reason = ""
        support = Support(
            checked.support.citations, checked.support.supported, checked.support.unsupported,
            checked.support.uncited_sentences,
            None if confidence is None else round(confidence, 4),
        )
        timings["total_s"] = time.monotonic() - self._t0
        timings["check_s"] = timings["total_s"] - timings["generate_s"]
        self._answer = Answer(
            text=NOT_FOUND if reason else checked.text,
            citations=() if reason else checked.citations,
            found=not reason,
            support=support,
            abstain_reason=reason,
            withheld=checked.text if reason and not refused else "",
            signals=signals,
            degraded=tuple(self._degraded),
            **common,  # type: ignore[arg-type]
        )

    @property
    def answer(self) -> Answer:
        """The finished Answer (iterate the stream first)."""
        if self._answer is None:
            raise RuntimeError("iterate the stream to the end before reading .answer")
        return self._answer
