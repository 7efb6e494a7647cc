"""A scripted OpenAI-compatible server on loopback, for replies no small real model gives.

It streams a reply as given (a reasoning model's <think> block split over many chunks, or
reasoning sent apart as ``reasoning_content``), answers the judge's one-token request with
given top log-probabilities, can fail on purpose (an HTTP error, or never answering), and
can count tokens the way llama-server or vLLM do. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    """Serves /v1/models and /v1/chat/completions (and tokenize endpoints) as scripted."""

    def __init__(
        self,
        reply: list[str] = (),  # type: ignore[assignment]
        reasoning: list[str] = (),  # type: ignore[assignment]
        judge_top: tuple[tuple[str, float], ...] = (("Yes", -0.05), ("No", -3.0)),
        error: tuple[int, dict] | None = None,
        hang_s: float = 0.0,
        counting: str = "",  # "", "llama-server" or "vllm"
        model: str = "stub-reasoner",
        raw: bytes | None = None,  # sent as the whole body of every chat reply
    ) -> None:
        self.reply, self.reasoning, self.judge_top = list(reply), list(reasoning), judge_top
        self.raw = raw
        self.error, self.hang_s, self.counting, self.model = error, hang_s, counting, model
        self.requests: list[tuple[str, dict]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def _json(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": stub.model}]})
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, body))
                if stub.hang_s:
                    time.sleep(stub.hang_s)
                    return
                if self.path == "/v1/chat/completions":
                    if stub.raw is not None:
                        self.send_response(200)
                        self.end_headers()
                        self.wfile.write(stub.raw)
                    elif stub.error:
                        self._json(*stub.error)
                    elif body.get("stream"):
                        self._stream()
                    else:
                        self._judge()
                elif self.path == "/apply-template" and stub.counting == "llama-server":
                    text = "".join(f"<|{m['role']}|> {m['content']}\n" for m in body["messages"])
                    self._json(200, {"prompt": text + "<|assistant|>"})
                elif self.path == "/tokenize" and stub.counting == "llama-server":
                    self._json(200, {"tokens": list(range(len(body.get("content", "").split())))})
                elif self.path == "/tokenize" and stub.counting == "vllm":
                    n = sum(len(m["content"].split()) + 3 for m in body["messages"])
                    self._json(200, {"count": n, "max_model_len": 4096, "tokens": []})
                else:
                    self._json(404, {"detail": "Not Found"})

            def _event(self, delta: dict, logprob: float | None = None) -> None:
                choice: dict = {"index": 0, "delta": delta, "finish_reason": None}
                if logprob is not None:
                    token = delta["content"]
                    choice["logprobs"] = {"content": [{"token": token, "logprob": logprob}]}
                self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                self.wfile.flush()

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self._event({"role": "assistant"})
                for piece in stub.reasoning:
                    self._event({"reasoning_content": piece})
                for piece in stub.reply:
                    self._event({"content": piece}, -0.1)
                self.wfile.write(b"data: [DONE]\n\n")

            def _judge(self) -> None:
                top = [{"token": t, "logprob": lp} for t, lp in stub.judge_top]
                first = top[0] if top else {"token": "Maybe", "logprob": 0.0}
                choice = {"index": 0, "message": {"role": "assistant", "content": first["token"]},
                          "logprobs": {"content": [{**first, "top_logprobs": top}]},
                          "finish_reason": "length"}
                self._json(200, {"choices": [choice]})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self._server.shutdown()
        self._server.server_close()

    def chats(self) -> list[dict]:
        """The chat completion requests received, oldest first."""
        return [b for path, b in self.requests if path == "/v1/chat/completions"]
