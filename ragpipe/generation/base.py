"""The generator contract: what ragpipe asks of an answer model, and what it declares.

A backend declares its ``Capabilities`` instead of being probed for methods: the answer
path reads them and, where one is missing, degrades in a way it records on the Answer
(``Answer.degraded``) and that ``ragpipe ask --explain`` and the web page show.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond streaming text, and where its prompts go.

    The defaults describe the least a generator must do: stream text in this process.
    """

    # stream_scored yields each piece with its token's log-probability (else NaN)
    token_logprobs: bool = False
    # stream_scored(copy_from=...) holds the answer to a verbatim span of the passages and
    # measures P(refusal) at the first step; needs control of every decoding step
    copy_constraint: bool = False
    # yes_probability: P("yes") of the first answer token, the calibrated abstention's judge
    judge: bool = False
    # count_prompt_tokens is exact (the model's tokenizer on the rendered chat template);
    # else it is a conservative estimate, never below the real count
    exact_token_count: bool = False
    # ragpipe renders the model's chat template itself (else the server does)
    chat_template: bool = False
    # where prompts (question, passages, history) are sent: "" in-process, else a base URL
    endpoint: str = ""


class Generator(Protocol):
    """What ragpipe needs from an answer model."""

    @property
    def name(self) -> str:
        """Model identifier for display."""
        ...

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this backend can do; the answer path reads it instead of probing."""
        ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the rendered chat prompt occupies (exact, or a conservative estimate)."""
        ...

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Yield the answer's text pieces as they are generated."""
        ...

    # Called only when ``capabilities.token_logprobs``.
    def stream_scored(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        copy_from: Sequence[str] = (),
        refusal: str = "",
        report: dict[str, float] | None = None,
        whole_sentence: bool = False,
    ) -> Iterator[tuple[str, float]]:
        """Yield (text piece, log-probability of its token); see LlamaCppGenerator."""
        ...

    # Called only when ``capabilities.judge``.
    def yes_probability(self, messages: Sequence[Message]) -> float | None:
        """P("yes") / (P("yes") + P("no")) for the first answer token; None if unmeasured."""
        ...
