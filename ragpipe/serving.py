"""`ragpipe serve`: the web app on an address, with the checks that make that safe.

The web app itself is Streamlit (ui/app.py); this module decides whether it may start and
how. On a loopback address anything goes: with no account the app runs as the one local
user (`make run`). Any other address serves the documents to a network, so it needs
accounts (someone to sign in) and a secret in the environment variable named by
server.secret_env (it signs Streamlit's cookies and XSRF tokens; without one, a restarted
server's tokens are guessable from nothing). The secret travels to Streamlit in its
environment, never on a command line that `ps` shows.

Streamlit's own protections are switched on explicitly, whatever a user's Streamlit
configuration says: XSRF protection, CORS limited to the page's own origin, no usage
statistics, uploads capped at ingest.max_file_mb.

Health: Streamlit answers ``/_stcore/health`` on its own port (the web server is up);
`ragpipe serve` adds ``http://127.0.0.1:HEALTH_PORT/health`` (server.health_port, on
loopback only) with the state of every index and of the answer model as JSON, for a
monitor or a systemd check on the same machine. It names indexes and counts, no text.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import accounts
from .errors import ConfigError
from .privacy import is_loopback
from .settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
MIN_SECRET = 32


def check_binding(settings: Settings, host: str, environ: Any = os.environ) -> str | None:
    """The cookie secret to use, or ConfigError saying why this address may not be served."""
    name = settings.server.secret_env
    secret = environ.get(name, "") if name else ""
    if is_loopback(host):
        return secret or None
    if not accounts.for_indexes(settings.paths.indexes).any():
        raise ConfigError(
            f"refusing to serve on {host}: there are no accounts, so anyone on the network "
            "would read the documents; add an admin with `ragpipe users add NAME --admin`, "
            "or serve on 127.0.0.1")
    if not name:
        raise ConfigError(
            f"refusing to serve on {host} without a secret: set server.secret_env to the name "
            "of an environment variable holding at least 32 random characters (e.g. "
            "`export RAGPIPE_SECRET=$(openssl rand -hex 32)` and server.secret_env = "
            "\"RAGPIPE_SECRET\")")
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"refusing to serve on {host}: the environment variable {name} (server.secret_env) "
            f"is {'unset' if not secret else 'shorter than 32 characters'}; set it to at least "
            "32 random characters, e.g. `export " + name + "=$(openssl rand -hex 32)`")
    return secret


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def allowed_hosts(settings: Settings, host: str) -> list[str]:
    """The Host header values the server accepts, or ConfigError when they must be named."""
    if settings.server.allowed_hosts:
        return list(settings.server.allowed_hosts)
    if is_loopback(host):
        return list(LOOPBACK_NAMES)
    raise ConfigError(
        f"refusing to serve on {host} without server.allowed_hosts: name the host names "
        "people use to reach it (e.g. [\"ragpipe.example.lan\"]), so that another site "
        "cannot reach it through a DNS trick")


def streamlit_command(settings: Settings, host: str, port: int) -> list[str]:
    """The Streamlit command line (no secrets in it)."""
    hosts = [arg for h in allowed_hosts(settings, host) for arg in ("--server.allowedHosts", h)]
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.enableXsrfProtection", "true",
        "--server.enableCORS", "true",
        "--server.maxUploadSize", str(max(1, int(settings.ingest.max_file_mb))),
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
        *hosts,
    ]


def health(settings: Settings) -> dict[str, Any]:
    """The state of every index and of the answer model, for monitoring (no document text)."""
    from . import models
    from .store.store import Store

    out: dict[str, Any] = {"time": time.time(), "indexes": {}, "ok": True}
    root = Path(settings.paths.indexes)
    names = sorted(p.name for p in root.iterdir()
                   if not p.name.startswith(".") and (p / "index.sqlite").is_file()) \
        if root.is_dir() else []
    for name in names:
        try:
            store = Store(root / name)
            stats = store.stats()
            problems = store.health()
            out["indexes"][name] = {
                "ok": not problems, "problems": problems, "files": stats["files"],
                "chunks": stats["chunks"], "failed": stats["failed"],
                "generation": stats["generation"], "last_sync": stats["last_sync"]}
        except Exception as exc:  # a damaged index is reported, not a failed health check
            out["indexes"][name] = {"ok": False, "problems": [str(exc)]}
    llm = settings.llm
    if llm.backend == "openai":
        out["model"] = {"backend": "openai", "name": llm.model, "base_url": llm.base_url}
    else:
        try:
            path = models.resolve_gguf(llm.model, settings.paths.models)
            out["model"] = {"backend": "llama_cpp", "name": llm.model, "ok": path.is_file(),
                            "file": path.name}
        except Exception as exc:
            out["model"] = {"backend": "llama_cpp", "name": llm.model, "ok": False,
                            "problem": str(exc)}
    out["ok"] = all(i["ok"] for i in out["indexes"].values()) and \
        out["model"].get("ok", True)
    return out


def web_up(port: int, timeout: float = 2.0) -> bool:
    """True when Streamlit answers its own health check on ``port`` (loopback)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                    timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def health_server(settings: Settings, port: int, web_port: int) -> ThreadingHTTPServer:
    """A loopback HTTP server answering GET /health with ``health()`` plus the web state."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            if self.path.split("?")[0] != "/health":
                self.send_error(404)
                return
            report = health(settings)
            report["web"] = web_up(web_port)
            report["ok"] = report["ok"] and report["web"]
            body = json.dumps(report).encode()
            self.send_response(200 if report["ok"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # no request lines in the logs
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve(settings: Settings, host: str, port: int, health_port: int | None) -> int:
    """Check the binding, then run Streamlit until it exits; returns its exit status."""
    secret = check_binding(settings, host)
    command = streamlit_command(settings, host, port)  # refuses a missing allowed_hosts
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if secret:
        env["STREAMLIT_SERVER_COOKIE_SECRET"] = secret
    hs = health_server(settings, health_port, port) if health_port else None
    mode = "sign-in required" if accounts.for_indexes(settings.paths.indexes).any() else \
        "single local user (no accounts)"
    print(f"ragpipe: serving http://{host}:{port} ({mode})"
          + (f"; health at http://127.0.0.1:{health_port}/health" if hs else ""), flush=True)
    proc = subprocess.Popen(command, env=env, cwd=ROOT)

    def stop(signum: int, frame: Any) -> None:  # systemd's stop: the web server goes too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 130
    finally:
        if hs is not None:
            hs.shutdown()
