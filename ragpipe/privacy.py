"""Where an index's passages may go: the guard between a local_only index and a remote model.

A question is answered by sending the question, the retrieved passages and the earlier
turns to the answer model. In-process (llama.cpp) nothing leaves the machine; a model
server gets all of it. An index is ``local_only`` unless it was synced with
``privacy.local_only = false``; its passages go only to a server on a loopback address
(127.0.0.0/8, ::1, localhost) or on a host the admin listed in ``privacy.trusted_hosts``.
A host name is matched as written, never resolved: DNS could point it anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from .errors import PrivacyRefused


def host_of(url: str) -> str:
    """The host part of ``url``, lower case, without brackets or port ('' if none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_trusted_entry(entry: str) -> bool:
    """Whether a privacy.trusted_hosts entry is a host name, an IP address or a network."""
    entry = entry.strip().lower()
    try:
        ipaddress.ip_network(entry, strict=False)
        return True
    except ValueError:
        pass
    labels = entry.rstrip(".").split(".")
    return bool(entry) and all(
        label and label.replace("-", "a").isalnum() and label.isascii() for label in labels
    )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed(url: str, trusted_hosts: Sequence[str] = ()) -> bool:
    """Whether a local_only index may send passages to the server at ``url``."""
    host = host_of(url)
    if not host:
        return False
    if is_loopback(host):
        return True
    for entry in (t.strip().lower() for t in trusted_hosts):
        if host == entry.rstrip("."):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_destination(
    endpoint: str, index: str, local_only: bool, trusted_hosts: Sequence[str] = ()
) -> None:
    """Raise PrivacyRefused when index ``index`` may not send its passages to ``endpoint``.

    ``endpoint`` is a generator's Capabilities.endpoint ('' in-process: always allowed).
    """
    if not endpoint or not local_only or is_allowed(endpoint, trusted_hosts):
        return
    raise PrivacyRefused(
        f"index {index!r} is local_only: its passages may only go to a model on this "
        f"machine, and llm.base_url = {endpoint} is not a loopback address or in "
        f"privacy.trusted_hosts; use a local server (http://127.0.0.1:PORT/v1), add "
        f"{host_of(endpoint) or 'the host'} to privacy.trusted_hosts, or set "
        f"privacy.local_only = false and run `ragpipe sync --index {index}` to let this "
        "index's passages leave the machine"
    )
