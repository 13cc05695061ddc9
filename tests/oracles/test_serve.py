"""The served oracle: `oatlike serve-oracle` (a real Ray Serve deployment on loopback) and its client.

The server runs in a subprocess with its own local Ray (`ray.init(address="local")`, never another
developer's cluster); the tests stop it, and everything it started, when they end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import make_config, read_metrics
from oracle_fixtures import BIN, free_port, served_oracle, stop_process_group

from oatlike.errors import ConfigError
from oatlike.experiment import run
from oatlike.oracles.base import build_oracle
from oatlike.oracles.config import RemoteOracleConfig
from oatlike.oracles.remote import RemoteOracle

pytestmark = pytest.mark.slow


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def logged_steps(metrics: Path) -> int:
    """The last step in a growing metrics.jsonl (a line still being written is skipped)."""
    text = metrics.read_text() if metrics.exists() else ""
    complete = text[: text.rfind("\n") + 1].splitlines()
    return max((json.loads(line)["step"] for line in complete), default=0)


@pytest.fixture(scope="module")
def rule_server(tmp_path_factory):
    """The rule oracle served by Ray Serve; batching waits up to 2 s for 4 requests to merge."""
    with served_oracle(
        tmp_path_factory.mktemp("served"), "oracle=rule", "serve.max_batch_requests=4", "serve.batch_wait_seconds=2"
    ) as served:
        yield served


def test_served_oracle_in_the_online_loop(rule_server, tmp_path):
    remote = [f"url={rule_server.url}", "batch_size=8", "concurrency=4"]
    overrides = [
        "oracle=remote",
        *(f"oracle.{option}" for option in remote),
        "eval.oracle=remote",  # (on a task the evaluation would otherwise be judged by its utility)
        *(f"eval.oracle.{option}" for option in remote),
    ]
    config = make_config(tmp_path, "steps=3", "eval.every=0", "data.max_eval_prompts=64", *overrides)
    summary = run(config, tmp_path)
    assert summary["steps"] == 3 and summary["stop_reason"] == "completed"
    records = read_metrics(tmp_path)
    steps = [r for r in records if "train/loss" in r]
    client_queries = (
        steps[-1]["oracle/queries"] + [r for r in records if "eval/win_rate" in r][-1]["eval/oracle_queries"]
    )
    client_calls = steps[-1]["oracle/calls"] + [r for r in records if "eval/win_rate" in r][-1]["eval/oracle_calls"]
    server = rule_server.metrics()
    assert server["queries"] == client_queries  # every pair the loop asked about reached the server, once
    # each call of the client is up to 4 concurrent requests of 8 pairs; Ray Serve merged requests
    assert server["calls"] < 4 * client_calls
    assert summary["final/eval/win_rate"] > 0


def test_protocol_scores_and_bad_requests(rule_server):
    oracle = build_oracle(RemoteOracleConfig(url=rule_server.url, batch_size=2, concurrency=2))
    assert isinstance(oracle, RemoteOracle) and oracle.has_score and oracle.served_oracle == "rule"
    assert oracle.score(["85+47=", "1+1=", "2+2="], ["132", "3", "4"]).tolist() == [1.0, 0.0, 1.0]
    probabilities = oracle.compare(["85+47="], ["132"], ["122"])
    assert 0.9 < probabilities[0] < 1.0 and oracle.queries == 4
    status, reply = post(f"{rule_server.url}/compare", b'{"prompts": ["1+1="], "responses_a": ["2"]}')
    assert status == 400 and "'responses_b' must be a list of strings" in reply["error"]
    status, reply = post(f"{rule_server.url}/compare", b"not json")
    assert status == 400
    status, reply = post(f"{rule_server.url}/nowhere", b"{}")
    assert status == 404 and "no route" in reply["error"]


def test_dynamic_batching_merges_concurrent_requests(rule_server):
    before = rule_server.metrics()
    body = json.dumps({"prompts": ["85+47="] * 5, "responses_a": ["132"] * 5, "responses_b": ["122"] * 5}).encode()
    with ThreadPoolExecutor(4) as pool:  # four requests at once fill one batch (serve.max_batch_requests=4)
        replies = list(pool.map(lambda _: post(f"{rule_server.url}/compare", body), range(4)))
    assert all(status == 200 and len(reply["probabilities"]) == 5 for status, reply in replies)
    after = rule_server.metrics()
    assert after["queries"] - before["queries"] == 20
    assert after["calls"] - before["calls"] < 4


def test_unreachable_server_fails_fast_with_one_line(tmp_path):
    port = free_port()
    with pytest.raises(
        ConfigError,
        match=rf"^oracle.url: no oracle server answers at http://127.0.0.1:{port} \(connection refused\); start one",
    ):
        build_oracle(RemoteOracleConfig(url=f"http://127.0.0.1:{port}"))
    result = subprocess.run(
        [str(BIN), "oracle=remote", f"oracle.url=http://127.0.0.1:{port}", "run_dir=run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("oatlike: error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(f"oatlike: error: oracle.url: no oracle server answers at http://127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def test_serve_oracle_command_line_errors(tmp_path):
    for args, message in [
        (["oracle=rul"], "oatlike: error: unknown oracle 'rul' (did you mean 'rule'?)"),
        (["serve.prot=1"], "oatlike: error: unknown config key 'serve.prot' (did you mean 'serve.port'?)"),
        (["-m", "oracle=rule"], "oatlike: error: serve-oracle takes key=value overrides only, not -m"),
    ]:
        result = subprocess.run(
            [str(BIN), "serve-oracle", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith(message), (
            result.stderr
        )
    with socket.socket() as taken:  # a port in use: one line before Ray starts
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN), "serve-oracle", f"serve.port={port}"], capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 1 and result.stderr.startswith(
        f"oatlike: error: serve.port: cannot listen on 127.0.0.1:{port}"
    )
    help_text = subprocess.run([str(BIN), "serve-oracle", "--help"], capture_output=True, text=True, timeout=300).stdout
    assert (
        "usage: oatlike serve-oracle" in help_text
        and "serve.replicas = 1" in help_text
        and "oracle.name = rule" in help_text
    )


def test_killed_server_mid_run_retries_then_stops_keeping_what_was_collected(tmp_path):
    """The loop runs in the real CLI; the server is killed (SIGKILL, with its Ray) after two steps."""
    with served_oracle(tmp_path, "oracle=rule") as server:
        args = [
            "steps=500",
            "eval.every=0",
            "data.max_eval_prompts=32",
            "learner.checkpoint_every=0",
            "oracle=remote",
            f"oracle.url={server.url}",
            "oracle.max_retries=2",
            "oracle.backoff_seconds=0.2",
            "oracle.timeout_seconds=10",
            "run_dir=run",
        ]
        log = tmp_path / "training.log"
        with open(log, "w") as output:  # a file, not a pipe: a full pipe would stall the run
            training = subprocess.Popen([str(BIN), *args], cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
        metrics = tmp_path / "run" / "metrics.jsonl"
        while logged_steps(metrics) < 2:
            assert training.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        stop_process_group(server.process, kill=True)
        training.wait(timeout=600)
    stderr = log.read_text()
    assert training.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("oatlike: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].startswith(
        f"oatlike: error: oracle.url: the oracle server at {server.url}/compare failed 3 times; last: "
    )
    assert "the run stopped at step" in errors[0] and "checkpoints/last" in errors[0]
    assert "retry 1/2" in stderr and "retry 2/2" in stderr and "Traceback" not in stderr
    run_dir = tmp_path / "run"
    steps = [r["step"] for r in read_metrics(run_dir) if "train/loss" in r]
    assert steps[:2] == [1, 2] and steps == list(range(1, len(steps) + 1))
    assert (run_dir / "checkpoints" / "last" / "config.json").exists()
    assert (run_dir / "config.yaml").exists() and (run_dir / "eval" / "step_000000.jsonl").exists()
