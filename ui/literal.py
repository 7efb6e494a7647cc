"""Document and answer text for the web page, shown as written.

Streamlit renders Markdown (and its own ``:color[...]`` directives), so a passage or an
answer copied from a document with ``*``, ``$`` or a leading ``1.`` would format the
page instead of reading as written. Everything the page shows from documents or from the
model goes through here.
"""

from __future__ import annotations

import re

from ragpipe.safety import terminal_safe

_MD_INLINE = re.compile(r"([\\`*_\[\]<>$~|:])")
_MD_BLOCK = re.compile(r"^(\d+)([.)])|^([#>+\-])")
# GFM makes bare URLs, www. addresses and e-mail addresses links after escapes are resolved,
# so escaping cannot stop it; a word joiner (U+2060, invisible) inside "://", after "www"
# and after "@" does.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)", re.IGNORECASE)
JOINER = "\u2060"


def line(text: str) -> str:
    """Document text shown literally, on one line: its markup must not format the page.

    No link either: an address in it stays text (the page never fetches or opens one).
    """
    flat = _AUTOLINK.sub(JOINER, " ".join(text.split()))
    flat = _MD_INLINE.sub(r"\\\1", flat)
    return _MD_BLOCK.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1)
                         else f"\\{m.group(3)}", flat)


def snippet(text: str, span: tuple[int, int] | None, limit: int = 600) -> str:
    """The passage text for display, the supporting span highlighted and kept in view."""
    if span is None:
        flat = " ".join(text.split())
        return line(flat[:limit]) + ("…" if len(flat) > limit else "")
    a, b = span
    lead = max(0, a - limit // 3)
    before, mid, after = text[lead:a], text[a:b], text[b:]
    room = max(0, limit - len(before) - len(mid))
    shown = (
        ("…" if lead else "") + line(before) + " "
        + f":orange-background[{line(mid)}]" + " "
        + line(after[:room]) + ("…" if len(after) > room else "")
    )
    return shown.strip()


def literal(text: str) -> str:
    """Text shown as written, one Markdown line per line of ``text``."""
    return "  \n".join(line(part) for part in text.splitlines() if part.strip())


def file_name(text: str) -> str:
    """A file name (or location) shown as written: no Markdown, no hidden characters.

    A name like ``![x](https:/evil.example/a.png).txt`` must not make the page fetch an
    image, and a right-to-left override must not disguise the extension.
    """
    return line(terminal_safe(text))
