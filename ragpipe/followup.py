"""Follow-up questions: make "and for contractors?" searchable, keep chat history small.

A follow-up leans on the conversation ("and for Tier 2 cities?", "how do I request it?"),
so searching for it alone finds the wrong passages. Two ways to make it standalone:

* ``heuristic`` (default): when the question looks like a follow-up (short, opens with
  "and"/"what about"/…, or leans on a pronoun), the search query is the previous question
  followed by the follow-up. Free, and retrieval (keywords + vectors) copes well with the
  extra words; ``benchmarks/bench_followup.py`` measures it.
* ``model``: the local model rewrites the follow-up as one standalone question. It costs a
  short generation before the search (about a second on two cores) and a 0.5B model
  sometimes answers instead of rewriting, so it is not the default.

The model still sees the earlier turns (``history_messages``) to phrase its answer; only
the latest pairs are kept, their citation markers and reasoning removed because passage
numbers are per turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .generation import Generator, strip_think
from .grounding import STOPWORDS, content_words

Message = dict[str, str]

_OPENERS = re.compile(
    r"^\s*(and|but|also|so|then|or|what about|how about|and what about|what if|same for|"
    r"is that|does that|do they|is it|can i|can they|why|how so)\b",
    re.IGNORECASE,
)
_PRONOUNS = frozenset(
    "it its they them their theirs this that these those he she him her his hers one ones "
    "there same".split()
)
_CITES = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")


def previous_question(history: Sequence[Message]) -> str:
    """The last user turn of ``history`` ('' when there is none)."""
    for m in reversed(history):
        if m.get("role") == "user" and m.get("content", "").strip():
            return m["content"].strip()
    return ""


def is_followup(question: str, history: Sequence[Message]) -> bool:
    """Whether ``question`` probably depends on the conversation before it."""
    if not previous_question(history):
        return False
    words = re.findall(r"[A-Za-z']+", question.lower())
    if not words:
        return False
    if _OPENERS.match(question):
        return True
    if len(content_words(question)) <= 2:
        return True
    return len(words) <= 10 and any(w in _PRONOUNS for w in words)


def rewrite_heuristic(question: str, history: Sequence[Message]) -> str:
    """The search query for ``question``: the previous question prepended to a follow-up."""
    if not is_followup(question, history):
        return question
    return f"{previous_question(history)} {question.strip()}"


REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the "
    "conversation: replace words like 'it', 'they' or 'that' with what they refer to and "
    "add what is missing from the earlier questions. Reply with the rewritten question "
    "only, without answering it."
)


def rewrite_with_model(
    generator: Generator, question: str, history: Sequence[Message], max_tokens: int = 48
) -> str:
    """The follow-up rewritten as a standalone question by the local model."""
    if not is_followup(question, history):
        return question
    asked = [m["content"].strip() for m in history if m.get("role") == "user"][-3:]
    convo = "\n".join(f"Earlier question: {q}" for q in asked)
    messages = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"{convo}\nLast question: {question.strip()}"},
    ]
    text = strip_think("".join(generator.stream(messages, max_tokens))).strip()
    text = text.splitlines()[0].strip().strip('"') if text else ""
    text = re.sub(r"^(rewritten question|standalone question|question)\s*:\s*", "", text,
                  flags=re.IGNORECASE)
    # A rewrite that lost the follow-up's own words is not a rewrite: keep the heuristic.
    own = {w for w in content_words(question) if w not in STOPWORDS}
    if not text or (own and not own & set(content_words(text))):
        return rewrite_heuristic(question, history)
    return text


def standalone_query(
    question: str, history: Sequence[Message], method: str = "heuristic",
    generator: Generator | None = None,
) -> str:
    """The query to search for ``question`` given the chat ``history``."""
    if not history or method == "off":
        return question
    if method == "model" and generator is not None:
        return rewrite_with_model(generator, question, history)
    return rewrite_heuristic(question, history)


def history_messages(history: Sequence[Message], turns: int) -> list[Message]:
    """The last ``turns`` question/answer pairs, without citation markers or reasoning."""
    clean: list[Message] = []
    for m in history:
        role = m.get("role")
        if role not in ("user", "assistant"):
            continue
        text = m.get("content", "")
        if role == "assistant":
            text = _CITES.sub("", strip_think(text)).strip()
        clean.append({"role": role, "content": text})
    if turns <= 0:
        return []
    # keep whole pairs, ending with an assistant turn
    while clean and clean[-1]["role"] != "assistant":
        clean.pop()
    return clean[-2 * turns :]
