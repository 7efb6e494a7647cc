"""LlamaCppGenerator: a GGUF model run in-process by llama-cpp-python.

It renders the model's own chat template itself so that the prompt's exact token count
is known before generation, and it serializes generations with a lock because one
llama.cpp context must never run two at once. It has every capability ragpipe uses.

Decoding goes through llama-cpp-python's public API only: ``Llama.generate`` (which also
reuses the KV cache's common prefix) with a logits processor that sees each step's logits
and picks the token, and the C functions it exports for the vocabulary (end-of-generation
tokens, token text). No private attribute (``_ctx``, ``_model``) is read and no internal
counter (``n_tokens``) is written, so a llama-cpp-python upgrade breaks loudly, not subtly.
Measured equal: the same replies, log-probabilities, refusal and judge probabilities, and
time as the earlier direct-context code, with SmolLM2 and the Qwen 0.5B model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelNotFound
from .base import Capabilities, Message
from .copying import CopyConstraint, variants

# OpenMP threads (llama.cpp's, and torch's, which share one runtime) spin while they wait
# by default. On a busy machine (other processes on the same cores) every multi-token batch
# then stalls for seconds: prompt reading measured 3.6 vs 95 tokens/s on 2 shared cores.
# Read once when the runtime loads, so it is set on import, before any model loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class LlamaCppGenerator:
    """A GGUF model run by llama.cpp; loads on first use."""

    def __init__(
        self,
        model_path: Path,
        n_ctx: int = 4096,
        threads: int = 0,
        temperature: float = 0.0,
        seed: int = 42,
    ) -> None:
        self.model_path = Path(model_path)
        self._n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.temperature = temperature
        self.seed = seed
        self._llm: Any = None
        self._formatter: Any = None
        self._vocab: Any = None
        self._load_lock = threading.Lock()
        self.lock = threading.Lock()  # one generation at a time per context

    @property
    def name(self) -> str:
        """The GGUF file name."""
        return self.model_path.name

    @property
    def n_ctx(self) -> int:
        """Context window in tokens."""
        return self._n_ctx

    @property
    def capabilities(self) -> Capabilities:
        """Everything; the scored stream decodes greedily, so only at temperature 0."""
        greedy = self.temperature == 0
        return Capabilities(
            token_logprobs=greedy, copy_constraint=greedy, judge=True,
            exact_token_count=True, chat_template=True,
        )

    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is None:
                if not self.model_path.is_file():
                    raise ModelNotFound(
                        f"model file {self.model_path} is missing: run `ragpipe models prepare`"
                    )
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                try:
                    llm = Llama(
                        model_path=str(self.model_path),
                        n_ctx=self._n_ctx,
                        n_threads=self.threads,
                        n_batch=512,
                        seed=self.seed,
                        verbose=False,
                    )
                except Exception as exc:
                    raise ModelNotFound(
                        f"cannot load model {self.model_path} ({exc}): the file is corrupt or "
                        "not a GGUF model; re-create it with `ragpipe models prepare` or "
                        "configure another llm.model"
                    ) from None
                template = llm.metadata.get("tokenizer.chat_template")
                if not template:
                    raise ModelNotFound(
                        f"{self.model_path} has no chat template: use an instruct/chat model"
                    )
                import llama_cpp

                vocab = llama_cpp.llama_model_get_vocab(llm.model)
                eos_id, bos_id = llm.token_eos(), llm.token_bos()
                eos = _text(llama_cpp.llama_vocab_get_text(vocab, eos_id)) if eos_id != -1 else ""
                bos = _text(llama_cpp.llama_vocab_get_text(vocab, bos_id)) if bos_id != -1 else ""
                self._vocab = vocab
                self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
                self._llm = llm
        return self._llm

    def render(self, messages: Sequence[Message]) -> tuple[list[int], list[str]]:
        """The prompt's tokens and stop strings, exactly as they will be sent."""
        llm = self._load()
        result = self._formatter(messages=list(messages))
        tokens = llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else []
        if isinstance(result.stop, str):
            stop = [result.stop]
        return tokens, stop

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Exact prompt length in tokens."""
        return len(self.render(messages)[0])

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (no special tokens)."""
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Stream the answer; holds the model's lock until the stream ends or is closed."""
        if self.temperature == 0:
            for text, _ in self.stream_scored(messages, max_tokens):
                if text:
                    yield text
            return
        tokens, stop = self._checked_render(messages, max_tokens)
        llm = self._load()
        with self.lock:
            llm.reset()
            pieces = llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=self.temperature,
                top_k=40,
                seed=self.seed,
                stop=stop,
                stream=True,
            )
            for piece in pieces:
                text = piece["choices"][0]["text"]
                if text:
                    yield text

    def _checked_render(self, messages: Sequence[Message], max_tokens: int):  # noqa: ANN202
        tokens, stop = self.render(messages)
        if len(tokens) + max_tokens > self._n_ctx:
            raise ValueError(
                f"prompt of {len(tokens)} tokens + {max_tokens} answer tokens exceeds "
                f"n_ctx={self._n_ctx}"
            )
        return tokens, stop

    def _decode(self, llm: Any, tokens: list[int], pick: Any) -> Generator[int, None, None]:
        """Greedy decoding through llama-cpp-python's public ``Llama.generate``.

        ``pick(logits)`` sees each step's logits (in token-id order, float32) and returns
        the token to take; a logits processor then leaves only that token for the greedy
        sampler. ``generate`` reuses the longest prefix already in the KV cache, so a
        prompt that starts like the previous call's (same system prompt and passages,
        another instruction or an appended turn) costs only its new tail.
        """
        import numpy as np
        from llama_cpp import LogitsProcessorList

        def only_the_pick(_ids: Any, logits: Any) -> Any:
            tok = pick(logits)
            forced = np.full_like(logits, -np.inf)
            forced[tok] = 0.0
            return forced

        return llm.generate(  # type: ignore[no-any-return]
            tokens, temp=0.0, repeat_penalty=1.0,
            logits_processor=LogitsProcessorList([only_the_pick]),
        )

    def stream_scored(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        copy_from: Sequence[str] = (),
        refusal: str = "",
        report: dict[str, float] | None = None,
        whole_sentence: bool = False,
    ) -> Iterator[tuple[str, float]]:
        """Greedy decoding that yields (text piece, log-probability of its token).

        The log-probabilities give a free confidence signal for the answer. With
        ``copy_from``, decoding is copy-constrained (see CopyConstraint): the answer is a
        verbatim span of one of those texts, optionally followed by citation markers
        (with ``whole_sentence``, a span runs to the end of its sentence).
        ``refusal`` names the reply the prompt allows when there is no answer (e.g.
        "Not found"): the probability of its first token at the first step is written to
        ``report["refusal_p"]`` (a free answerability signal), and under the copy
        constraint that token cannot start the answer. Text pieces may be empty while a
        multi-byte character is incomplete. Holds the lock until the stream ends or is
        closed.
        """
        import codecs

        import llama_cpp
        import numpy as np

        tokens, stop = self._checked_render(messages, max_tokens)
        llm = self._load()
        vocab = self._vocab
        copy = CopyConstraint(copy_from, whole_sentence) if copy_from else None
        refuse = sorted(self._first_tokens(llm, variants(refusal))) if refusal else []
        state: dict[str, Any] = {"step": 0, "logprob": 0.0, "end": False}

        def pick(logits: Any) -> int:
            step = state["step"]
            state["step"] += 1
            tok = int(np.argmax(logits))
            top = float(logits[tok])
            norm = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
            if step == 0 and refuse and report is not None:
                report["refusal_p"] = float(np.exp(logits[refuse] - norm).sum())
            if copy is not None and not llama_cpp.llama_vocab_is_eog(vocab, tok):
                k = CopyConstraint.candidates
                best = np.argpartition(logits, -k)[-k:]
                order = [int(t) for t in best[np.argsort(-logits[best])]]
                if step == 0:
                    order = [t for t in order if t not in refuse]
                chosen = copy.choose(
                    [(t, _piece(vocab, t).decode("utf-8", "replace")) for t in order]
                )
                if chosen is None:
                    state["end"] = True
                else:
                    tok = chosen
            state["logprob"] = float(logits[tok]) - norm
            return tok

        with self.lock:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            held = ""  # text that might be the start of a stop string
            steps = self._decode(llm, tokens, pick)
            try:
                for n, tok in enumerate(steps, start=1):
                    if state["end"] or llama_cpp.llama_vocab_is_eog(vocab, tok):
                        break
                    logprob = state["logprob"]
                    held += decoder.decode(_piece(vocab, tok))
                    cut = min((held.find(s) for s in stop if s and s in held), default=-1)
                    if cut >= 0:
                        yield held[:cut], logprob
                        return
                    keep = max((len(s) - 1 for s in stop if s), default=0)
                    # Hold back only a tail that could still grow into a stop string.
                    hold = next(
                        (m for m in range(min(keep, len(held)), 0, -1)
                         if any(s.startswith(held[-m:]) for s in stop if s)),
                        0,
                    )
                    out, held = held[: len(held) - hold], held[len(held) - hold :]
                    yield out, logprob
                    if n >= max_tokens:
                        break
            finally:
                steps.close()
            if held:
                yield held, 0.0

    def yes_probability(self, messages: Sequence[Message]) -> float:
        """P("yes") / (P("yes") + P("no")) for the model's first answer token.

        A cheap judge: when ``messages`` extend the previous call's prompt (same system
        prompt and passages, or the answer conversation plus one more turn), only the new
        tail is evaluated.
        """
        import numpy as np

        tokens, _ = self.render(messages)
        llm = self._load()
        yes = self._first_tokens(llm, ("yes", "Yes", " yes", " Yes", "YES"))
        no = self._first_tokens(llm, ("no", "No", " no", " No", "NO"))
        seen: list[Any] = []

        def look(logits: Any) -> int:
            seen.append(logits.astype(np.float64))
            return int(np.argmax(logits))

        with self.lock:
            steps = self._decode(llm, tokens, look)
            try:
                next(steps, None)  # the first step's logits are all the judge needs
            finally:
                steps.close()
        if not seen:
            return 0.5
        logits = seen[0]
        top = logits.max()
        p = np.exp(logits - top)
        py, pn = float(p[sorted(yes)].sum()), float(p[sorted(no)].sum())
        return py / (py + pn) if py + pn > 0 else 0.5

    def _first_tokens(self, llm: Any, words: Sequence[str]) -> set[int]:
        out = set()
        for w in words:
            ids = llm.tokenize(w.encode("utf-8"), add_bos=False, special=False)
            if ids:
                out.add(ids[0])
        return out


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _piece(vocab: Any, tok: int) -> bytes:
    """The bytes of one token as text (special tokens as empty), via the public C API."""
    import ctypes

    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, tok, buf, size, 0, False)
        if n >= 0:
            return buf.raw[:n]
        size = -n  # the piece needs this many bytes
