"""`ragpipe serve`: which addresses may be served, Streamlit's protections, health."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import CORPUS, ROOT

from ragpipe import accounts, serving
from ragpipe.cli import main
from ragpipe.errors import ConfigError
from ragpipe.settings import load_settings

PW = "correct horse battery"
SECRET = "s" * 40


def settings_for(tmp_path, **extra):
    return load_settings(overrides={"paths.indexes": tmp_path / "indexes", **extra}, environ={})


def test_loopback_needs_nothing(tmp_path):
    s = settings_for(tmp_path)
    assert serving.check_binding(s, "127.0.0.1", {}) is None
    assert serving.check_binding(s, "localhost", {}) is None
    assert "--server.allowedHosts" in serving.streamlit_command(s, "127.0.0.1", 8501)


def test_another_address_needs_accounts_a_secret_and_host_names(tmp_path):
    s = settings_for(tmp_path, **{"server.secret_env": "RAGPIPE_SECRET"})
    with pytest.raises(ConfigError, match="no accounts.*ragpipe users add"):
        serving.check_binding(s, "0.0.0.0", {"RAGPIPE_SECRET": SECRET})
    accounts.for_indexes(s.paths.indexes).add("ann", PW, admin=True)
    with pytest.raises(ConfigError, match="RAGPIPE_SECRET .* is unset"):
        serving.check_binding(s, "0.0.0.0", {})
    with pytest.raises(ConfigError, match="shorter than 32"):
        serving.check_binding(s, "0.0.0.0", {"RAGPIPE_SECRET": "short"})
    assert serving.check_binding(s, "0.0.0.0", {"RAGPIPE_SECRET": SECRET}) == SECRET
    no_env = settings_for(tmp_path)
    with pytest.raises(ConfigError, match="set server.secret_env"):
        serving.check_binding(no_env, "10.1.2.3", {"RAGPIPE_SECRET": SECRET})
    with pytest.raises(ConfigError, match="server.allowed_hosts"):
        serving.streamlit_command(s, "0.0.0.0", 8501)
    named = settings_for(tmp_path, **{"server.allowed_hosts": "rag.example.lan"})
    cmd = serving.streamlit_command(named, "0.0.0.0", 8501)
    assert cmd[cmd.index("--server.allowedHosts") + 1] == "rag.example.lan"
    with pytest.raises(ConfigError, match="server.allowed_hosts"):
        settings_for(tmp_path, **{"server.allowed_hosts": '["quoted"]'})


def test_the_command_line_switches_protections_on_and_holds_no_secret(tmp_path):
    s = settings_for(tmp_path, **{"server.secret_env": "RAGPIPE_SECRET"})
    cmd = serving.streamlit_command(s, "127.0.0.1", 8501)
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=False))
    assert flags["--server.enableXsrfProtection"] == "true"
    assert flags["--server.enableCORS"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.maxUploadSize"] == str(int(s.ingest.max_file_mb))
    assert not any(SECRET in c or "cookieSecret" in c for c in cmd)


def test_cli_refuses_an_open_address_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--host", "0.0.0.0", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no accounts" in err
    assert main(["serve", "--check"]) == 0


def test_health_reports_indexes_and_the_model(tmp_path, embedder, capsys, monkeypatch):
    from ragpipe.pipeline import Pipeline

    s = settings_for(tmp_path, **{"paths.models": ROOT / "models", "llm.model": "smollm2-135m"})
    Pipeline(s, "docs", embedder=embedder).ingest(CORPUS)
    report = serving.health(s)
    assert report["ok"] and report["model"]["ok"]
    docs = report["indexes"]["docs"]
    assert docs["ok"] and docs["files"] == len(list(CORPUS.iterdir())) and docs["chunks"] > 0
    assert "TR-7" not in json.dumps(report)  # counts and names, no text
    broken = settings_for(tmp_path, **{"llm.model": str(tmp_path / "missing.gguf")})
    assert not serving.health(broken)["ok"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ws_handshake(port: int, host: str) -> int:
    """The status of a WebSocket upgrade to the app with this Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_stcore/stream", headers={
        "Host": f"{host}:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "streamlit"})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.e2e
def test_a_real_server_with_health_and_host_checks(tmp_path):
    port, health = free_port(), free_port()
    env = dict(os.environ, RAGPIPE_PATHS_INDEXES=str(tmp_path / "indexes"),
               RAGPIPE_PATHS_MODELS=str(ROOT / "models"), RAGPIPE_LLM_MODEL="smollm2-135m",
               RAGPIPE_SERVER_HEALTH_PORT=str(health), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "ragpipe", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, report = time.time() + 120, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/health", timeout=5) as r:
                    report = json.loads(r.read())
                if report["web"]:
                    break
            except urllib.error.HTTPError as exc:  # 503 until the web server is up
                report = json.loads(exc.read())
            except OSError:
                pass
            time.sleep(1)
        assert report and report["web"] and report["ok"], report
        assert report["indexes"] == {} and report["model"]["name"] == "smollm2-135m"
        assert ws_handshake(port, "localhost") == 101
        assert ws_handshake(port, "evil.example") == 403  # DNS rebinding refused
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "serving http://127.0.0.1:" in out and "single local user" in out
