r"""Text from documents and from the model, made harmless where it is shown.

``terminal_safe``: file names and text printed to a terminal show control and bidi
characters as escapes (``\n``, ``\x1b``, ``\u202e``), so a name cannot forge a line, send
escape sequences, or reverse its extension on screen. JSON and CSV keep the exact text:
they are for programs.
"""

from __future__ import annotations

# ----- terminal output ---------------------------------------------------------------------------
# C0 and C1 controls, DEL, the line and paragraph separators, and the bidi controls
# (the Trojan Source list: LRM, RLM, ALM, LRE..RLO, LRI..PDI).
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x061C, 0x200E, 0x200F,
           *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    return _NAMED.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_ONE_LINE = str.maketrans({c: _escape(c) for c in _UNSAFE})
_LINES = str.maketrans({c: _escape(c) for c in _UNSAFE if c not in (0x09, 0x0A)})


def terminal_safe(text: str, multiline: bool = False) -> str:
    """``text`` with control and bidi characters shown as escapes, for a terminal.

    ``multiline`` keeps newlines and tabs (answer text); file names and messages stay on
    one line. Backslashes are left as they are: the point is that nothing is hidden or
    forged on screen, not that the escaping can be reversed.
    """
    return text.translate(_LINES if multiline else _ONE_LINE)
