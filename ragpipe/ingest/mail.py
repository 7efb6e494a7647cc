"""E-mail (RFC 5322 .eml): headers, the body, and text attachments.

Named ``mail`` rather than ``email`` so it never shadows the standard library.
Text parts are decoded with ``decode_text`` (strict) instead of the email
package's own decoding, which replaces undecodable bytes without saying so.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from ..datatypes import Page
from .base import Extracted, ReadOptions
from .text import clean_text, decode_text, html_to_text

HEADERS = ("From", "To", "Cc", "Date", "Subject")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "text/html", "text/x-markdown")
_MAX_DEPTH = 3  # forwarded messages inside forwarded messages


def _part_text(part: EmailMessage) -> str:
    """Decoded text of a text/* part; HTML reduced to its visible text."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_text(payload, part.get_content_charset())
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    return text


def _message_text(msg: EmailMessage, notes: list[str], depth: int = 0) -> str:
    lines = [f"{h}: {msg[h]}" for h in HEADERS if msg[h] is not None]
    body = msg.get_body(preferencelist=("plain", "html"))
    sections = ["\n".join(lines)]
    if body is not None:
        sections.append(_part_text(body))  # type: ignore[arg-type]
    for part in msg.iter_attachments():
        name = part.get_filename() or "(unnamed)"
        ctype = part.get_content_type()
        if ctype in _TEXT_TYPES or (ctype.startswith("text/") and ctype != "text/calendar"):
            sections.append(f"Attachment: {name}\n{_part_text(part)}")  # type: ignore[arg-type]
        elif ctype == "message/rfc822" and depth < _MAX_DEPTH:
            inner = part.get_content()
            if isinstance(inner, EmailMessage):
                sections.append("Attached message:\n" + _message_text(inner, notes, depth + 1))
        else:
            notes.append(f"attachment {name} ({ctype}) not read")
    return "\n\n".join(s.strip() for s in sections if s.strip())


def read_eml(data: bytes, options: ReadOptions) -> Extracted:
    """One page: the main headers, the body (plain text preferred) and text attachments."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    notes: list[str] = []
    text = _message_text(msg, notes)  # type: ignore[arg-type]
    return Extracted([Page(None, clean_text(text))], notes)
