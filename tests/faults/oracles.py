"""Oracles that answer, but badly: a served oracle (``oracle=remote``) whose ``/compare`` replies are NaN,
out of [0, 1], too few, of the wrong shape or not JSON, and an LLM judge whose replies never hold a verdict.

Each fake server says ``/health`` ok, so the run starts, and answers its first bad reply during the run:
during the first collection (step 1; the step-0 evaluation asks the rule oracle) or, for the evaluation
oracle, during the step-0 evaluation. It runs in a thread of the test's process and is stopped when the
test ends (:class:`Serving`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from oracle_fixtures import Reply, ScriptedChatServer

from faults.harness import Fault

KEPT = ("metrics.jsonl", "summary.json", "checkpoints/last/model.safetensors")
FAST = ("steps=2", "eval.every=0", "data.max_eval_prompts=8")
TRAINING = (*FAST, "oracle@eval.oracle=rule")
"""A run whose step-0 evaluation asks the rule oracle, so the bad training oracle is first asked at step 1."""
URL = r"http://127\.0\.0\.1:\d+"


class Serving:
    """Starts and stops a server from a test: ``monkeypatch.setattr(Serving(start, stop), "on", True)`` starts
    it, and the monkeypatch's undo at the end of the test (which sets ``on`` back to False) stops it."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        self._start, self._stop, self._on = start, stop, False

    @property
    def on(self) -> bool:
        return self._on

    @on.setter
    def on(self, value: bool) -> None:
        if value != self._on:
            (self._start if value else self._stop)()
            self._on = value


class FakeOracleServer:
    """A stand-in for ``oatlike serve-oracle`` on loopback: ``GET /health`` is ok, and ``POST /compare`` of
    ``n`` pairs gets ``reply(n)`` (the body, sent as JSON with HTTP 200)."""

    def __init__(self, reply: Callable[[int], bytes]) -> None:
        self.compares = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(json.dumps({"status": "ok", "oracle": "fake", "has_score": False}).encode())

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.compares += 1
                self._send(reply(len(request["prompts"])))

        server = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serving(monkeypatch: pytest.MonkeyPatch, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
    """Start a server now; stop it when the test ends."""
    monkeypatch.setattr(Serving(start, stop), "on", True)


def remote(
    reply: Callable[[int], bytes], key: str = "oracle", overrides: Sequence[str] = ()
) -> Callable[..., Sequence[str]]:
    """``prepare``: a fake served oracle answering ``reply(n)`` to every ``/compare``, as ``key=remote``."""

    def prepare(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Sequence[str]:
        server = FakeOracleServer(reply)
        serving(monkeypatch, server.start, server.stop)
        kind = "oracle=remote" if key == "oracle" else f"oracle@{key}=remote"
        return [kind, f"{key}.url={server.url}", f"{key}.backoff_seconds=0.01", *overrides]

    return prepare


def probabilities(values: Callable[[int], list[Any]]) -> Callable[[int], bytes]:
    """A reply ``{"probabilities": values(n)}`` (``json.dumps`` writes a NaN as the bare ``NaN`` it reads back)."""
    return lambda n: json.dumps({"probabilities": values(n)}).encode()


def never_a_verdict(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Sequence[str]:
    """``prepare``: an OpenAI-compatible judge whose every reply is chatter without a verdict."""
    server = ScriptedChatServer(lambda number, body: Reply("I would rather not say."))
    serving(monkeypatch, server.__enter__, lambda: server.__exit__(None, None, None))
    return [
        "oracle=judge",
        f"oracle.base_url={server.url}",
        "oracle.model=judge",
        f"oracle.cache_path={folder / 'verdicts.sqlite'}",
        "oracle.malformed_retries=1",
        "oracle.backoff_seconds=0.01",
    ]


CASES = [
    Fault(
        "remote-oracle-answers-nan",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL} answered the probability nan at index 1 of \d+ pairs; "
        r"a probability must be finite and in \[0, 1\]",
        prepare=remote(probabilities(lambda n: [0.5, float("nan")] + [0.5] * (n - 2))),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "eval-oracle-answers-above-one",
        FAST,
        rf"eval\.oracle\.url: the oracle server at {URL} answered the probability 1\.7 at index 0 of 8 pairs; "
        r"a probability must be finite and in \[0, 1\]; the run stopped at step \d+",
        prepare=remote(probabilities(lambda n: [1.7] * n), key="eval.oracle"),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "remote-oracle-answers-too-few",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL} answered 1 probability for \d+ pairs; "
        r"it must answer one per query",
        prepare=remote(probabilities(lambda n: [0.5])),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "remote-oracle-reply-lacks-probabilities",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL} answered POST /compare with an object without "
        r"'probabilities': \{\"probs\": \[0\.5",
        prepare=remote(lambda n: json.dumps({"probs": [0.5] * n}).encode()),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "remote-oracle-answers-strings",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL} answered POST /compare with the JSON string \"0\.5\" "
        r"at index 0 of 'probabilities', not a number",
        prepare=remote(probabilities(lambda n: ["0.5"] * n)),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "remote-oracle-answers-a-json-list",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL} answered POST /compare with a JSON list \(\[0\.5, .*\), "
        r"not an object with 'probabilities'; is it an `oatlike serve-oracle` of this version\?",
        prepare=remote(lambda n: json.dumps([0.5] * n).encode()),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "remote-oracle-reply-is-not-json",
        TRAINING,
        rf"oracle\.url: the oracle server at {URL}/compare failed 2 times; last: the reply is not JSON",
        prepare=remote(lambda n: b"<html>502 Bad Gateway</html>", overrides=["oracle.max_retries=1"]),
        kept=KEPT,
        stop_reason="oracle failed",
    ),
    Fault(
        "judge-replies-never-hold-a-verdict",
        TRAINING,
        r"oracle\.max_failure_rate: \d+ of the \d+ verdicts asked of the judge \(100%\) came without one after "
        r"2 tries each, more than the 20% allowed; a reply: 'I would rather not say\.'; have oracle\.template ask",
        prepare=never_a_verdict,
        kept=KEPT,
        stop_reason="oracle failed",
    ),
]
