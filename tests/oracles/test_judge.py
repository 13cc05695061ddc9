"""The LLM judge against real HTTP servers on loopback: a scripted server (slow, failing and malformed
replies, position bias, the key, the cache, token accounting) and `vllm serve` of the CPU build of vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import make_config, read_metrics
from oracle_fixtures import BIN, Reply, ScriptedChatServer, free_port, shown_pair, stop_process_group, utility_judge

from oatlike.errors import ConfigError, OracleError
from oatlike.experiment import run
from oatlike.oracles.base import OracleSite, build_oracle
from oatlike.oracles.config import JudgeOracleConfig
from oatlike.oracles.judge import JudgeOracle, fill_template, load_template, parse_verdict
from oatlike.tasks.arithmetic import ArithmeticTask

TASK = ArithmeticTask()
PROMPTS = ["85+47=", "12+30=", "99+1="]
GOOD = ["132", "42", "100"]
BAD = ["122", "43", "90"]
SECRET = "sk-oatlike-test-5ecret-7f3a9c1e"


def judge(server: ScriptedChatServer, tmp_path: Path, **settings) -> JudgeOracle:
    config = JudgeOracleConfig(
        base_url=server.url, model="judge", cache_path=str(tmp_path / "verdicts.sqlite"), backoff_seconds=0.05
    )
    oracle = build_oracle(replace(config, **settings))
    assert isinstance(oracle, JudgeOracle)
    return oracle


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Response A is right.\nPreferred: A", 1.0),
        ("A looks fine, but B carries the one.\nPreferred: B", 0.0),
        ("**Verdict:** Response B", 0.0),
        ("[[A]]", 1.0),
        ("B", 0.0),
        ("Preferred: tie", 0.5),
        ("Winner = 'A'", 1.0),
        ("The better answer: a careful one", None),
        ("I cannot decide.", None),
        ("", None),
    ],
)
def test_verdicts_are_parsed_robustly(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_templates_builtin_and_from_a_file(tmp_path):
    for name in ("helpfulness", "summarization"):
        text = load_template(name)
        assert all(p in text for p in ("{prompt}", "{response_a}", "{response_b}"))
    mine = tmp_path / "mine.txt"
    mine.write_text("Q: {prompt}\nA: {response_a}\nB: {response_b}\nBetter (A or B):")
    assert load_template(str(mine)).startswith("Q: {prompt}")
    # the placeholders are filled in one pass: text inside a response is left alone
    assert (
        fill_template(load_template(str(mine)), "{response_b}", "x {prompt}", "y")
        == "Q: {response_b}\nA: x {prompt}\nB: y\nBetter (A or B):"
    )
    (tmp_path / "bad.txt").write_text("Which is better, {response_a} or {response_b}?")
    with pytest.raises(ConfigError, match=r"oracle.template: .*bad.txt lacks \{prompt\}"):
        load_template(str(tmp_path / "bad.txt"))
    with pytest.raises(
        ConfigError, match=r"oracle.template: no template named or file 'helpfullness'; use helpfulness, summarization"
    ):
        load_template("helpfullness")


def test_both_orders_cancel_position_bias_and_the_key_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ScriptedChatServer(lambda n, body: Reply("Preferred: A")) as server:  # always the first shown
        oracle = judge(server, tmp_path)
        assert oracle.compare(PROMPTS, GOOD, BAD).tolist() == [0.5, 0.5, 0.5]
        one_order = judge(server, tmp_path, both_orders=False, cache=False)
        assert one_order.compare(PROMPTS, BAD, GOOD).tolist() == [1.0, 1.0, 1.0]
    assert len(server.chats) == 2 * 3 + 3
    assert {r.headers.get("Authorization") for r in server.requests} == {f"Bearer {SECRET}"}
    first = server.chats[0].body
    assert (first["model"], first["max_tokens"], first["temperature"]) == ("judge", 256, 0.0)
    shown = [shown_pair(r.body) for r in server.chats[:6]]
    assert sorted(shown[i] for i in range(6) if shown[i][0] == "85+47=") == [
        ("85+47=", "122", "132"),
        ("85+47=", "132", "122"),
    ]


def test_a_judge_that_knows_the_answer_and_its_costs(tmp_path):
    with ScriptedChatServer(utility_judge(TASK)) as server:
        oracle = judge(server, tmp_path, prompt_cost_per_million=2.0, completion_cost_per_million=10.0)
        assert oracle.compare(PROMPTS, GOOD, BAD).tolist() == [1.0, 1.0, 1.0]
        assert oracle.compare(PROMPTS, BAD, GOOD).tolist() == [0.0, 0.0, 0.0]
    metrics = oracle.metrics()
    assert (metrics["queries"], metrics["requests"], metrics["cache_hits"]) == (6, 6, 6)  # (b, a) was asked first
    assert (metrics["prompt_tokens"], metrics["completion_tokens"]) == (600, 30)
    assert metrics["cost_usd"] == pytest.approx((600 * 2.0 + 30 * 10.0) / 1e6)


def test_the_cache_survives_the_process_and_is_keyed_by_model_and_template(tmp_path):
    with ScriptedChatServer(utility_judge(TASK), models=("judge", "other")) as server:
        judge(server, tmp_path).compare(PROMPTS, GOOD, BAD)
        assert len(server.chats) == 6
        again = judge(server, tmp_path)  # a new oracle on the same file: everything from the cache
        assert again.compare(PROMPTS, GOOD, BAD).tolist() == [1.0, 1.0, 1.0]
        assert (len(server.chats), again.cache_hits, again.queries) == (6, 6, 3)
        judge(server, tmp_path, model="other").compare(PROMPTS[:1], GOOD[:1], BAD[:1])
        assert len(server.chats) == 8
        judge(server, tmp_path, template="summarization").compare(PROMPTS[:1], GOOD[:1], BAD[:1])
        assert len(server.chats) == 10


def test_malformed_replies_are_retried_then_counted_as_ties(tmp_path):
    def garbled_twice(number: int, body: dict) -> Reply:
        return Reply("I would rather not say." if number <= 2 else "Preferred: A")

    with ScriptedChatServer(garbled_twice) as server:
        oracle = judge(server, tmp_path, both_orders=False, malformed_retries=2)
        assert oracle.compare(PROMPTS[:1], GOOD[:1], BAD[:1]).tolist() == [1.0]
        assert (oracle.retries, oracle.failures, len(server.chats)) == (2, 0, 3)
    with ScriptedChatServer(lambda n, body: Reply(None if n % 2 else "no verdict here")) as server:
        oracle = judge(server, tmp_path, malformed_retries=1, cache=False)
        assert oracle.compare(PROMPTS, GOOD, BAD).tolist() == [0.5, 0.5, 0.5]
        assert (oracle.failures, oracle.retries, len(server.chats)) == (6, 6, 12)  # never a crash


def test_slow_and_failing_replies_are_retried_with_backoff(tmp_path):
    def slow_then_failing(number: int, body: dict) -> Reply:
        if number == 1:
            return Reply(delay_seconds=3.0)  # longer than the client's timeout
        if number in (2, 3):
            return Reply(status=503)
        return Reply("Preferred: B")

    with ScriptedChatServer(slow_then_failing) as server:
        oracle = judge(server, tmp_path, both_orders=False, timeout_seconds=0.5, max_retries=3)
        assert oracle.compare(PROMPTS[:1], GOOD[:1], BAD[:1]).tolist() == [0.0]
        assert (oracle.retries, oracle.failures, len(server.chats)) == (3, 0, 4)
    with ScriptedChatServer(lambda n, body: Reply(status=500)) as server:
        oracle = judge(server, tmp_path, max_retries=2)
        with pytest.raises(
            OracleError,
            match=r"oracle.base_url: the judge endpoint at .*/chat/completions failed 3 times; last: HTTP 500",
        ):
            oracle.compare(PROMPTS[:1], GOOD[:1], BAD[:1])
    with ScriptedChatServer(lambda n, body: Reply(status=400)) as server:  # a bad request is not retried
        with pytest.raises(OracleError, match="answered HTTP 400"):
            judge(server, tmp_path, max_retries=5).compare(PROMPTS[:1], GOOD[:1], BAD[:1])
        assert len(server.chats) == 1


def test_concurrency_limit(tmp_path):
    arrived = threading.Barrier(3)

    def three_at_once(number: int, body: dict) -> Reply:
        if number <= 3:
            arrived.wait(timeout=60)  # the first three requests are answered only once all three are in
        return Reply("Preferred: A")

    with ScriptedChatServer(three_at_once) as server:
        oracle = judge(server, tmp_path, concurrency=3, both_orders=False, cache=False)
        oracle.compare(PROMPTS * 4, GOOD * 4, BAD * 4)
    assert server.most_in_flight == 3 and len(server.chats) == 12


def test_start_up_fails_fast_with_one_line_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = JudgeOracleConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="judge", cache=False)
    with pytest.raises(
        ConfigError,
        match=r"^oracle.base_url: cannot reach the judge endpoint http://127.0.0.1:\d+/v1 \(connection refused\)$",
    ):
        build_oracle(config)
    with ScriptedChatServer(lambda n, body: Reply()) as server:
        server.models_status = 401
        with pytest.raises(
            ConfigError,
            match=r"^eval.oracle.api_key_env: the judge endpoint wants an API key \(HTTP 401\); set \$OPENAI_API_KEY$",
        ):
            build_oracle(replace(config, base_url=server.url), OracleSite(key="eval.oracle"))
        monkeypatch.setenv("MY_JUDGE_KEY", SECRET)
        with pytest.raises(ConfigError, match=r"refused the key in \$MY_JUDGE_KEY") as refused:
            build_oracle(replace(config, base_url=server.url, api_key_env="MY_JUDGE_KEY"))
        assert SECRET not in str(refused.value)
        server.models_status = 200
        with pytest.raises(ConfigError, match=r"^oracle.model: http://.* serves judge, not 'gpt-4o'$"):
            build_oracle(replace(config, base_url=server.url, model="gpt-4o"))
        server.models_status = 404  # a compatible server without a model list is fine
        assert build_oracle(replace(config, base_url=server.url)).name == "judge"


def test_judge_in_the_online_loop_for_training_and_evaluation(tmp_path):
    with ScriptedChatServer(utility_judge(TASK)) as server:
        overrides = [
            f"base_url={server.url}",
            "model=judge",
            "backoff_seconds=0.05",
            f"cache_path={tmp_path / 'c.sqlite'}",
        ]
        config = make_config(
            tmp_path / "run",
            "steps=2",
            "eval.every=0",
            "data.max_eval_prompts=16",
            "oracle=judge",
            *[f"oracle.{o}" for o in overrides],
            "oracle@eval.oracle=rule",
        )
        summary = run(config, tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    steps = [r for r in records if "train/loss" in r]
    assert summary["steps"] == 2 and summary["oracle_queries"] == steps[-1]["oracle/queries"] > 0
    last = steps[-1]
    assert last["oracle/requests"] + last["oracle/cache_hits"] == 2 * last["oracle/queries"]  # both orders
    assert len(server.chats) == steps[-1]["oracle/requests"]  # evaluation did not use the judge
    evaluation = [r for r in records if "eval/win_rate" in r][-1]
    assert evaluation["eval/oracle_queries"] == 2 * 16 and "eval/oracle_requests" not in evaluation


@pytest.mark.slow
def test_the_secret_never_reaches_logs_configs_or_wandb(tmp_path):
    """The CLI with the judge, W&B offline, a run that ends on an error: no file and no output holds the key."""
    with ScriptedChatServer(utility_judge(TASK)) as server:
        args = [
            "steps=2",
            "eval.every=0",
            "data.max_eval_prompts=8",
            "oracle=judge",
            f"oracle.base_url={server.url}",
            "oracle.model=judge",
            "oracle.api_key_env=OATLIKE_TEST_JUDGE_KEY",
            f"oracle.cache_path={tmp_path / 'cache.sqlite'}",
            "tracking.wandb.mode=offline",
            "run_dir=run",
        ]
        env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
        env["OATLIKE_TEST_JUDGE_KEY"] = SECRET
        result = subprocess.run([str(BIN), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert {r.headers.get("Authorization") for r in server.chats} == {f"Bearer {SECRET}"}
        server.models_status = 403  # a second run whose key is refused: the error names the variable, not the key
        failed = subprocess.run(
            [str(BIN), *args[:-1], "run_dir=run2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert failed.returncode == 1 and "refused the key in $OATLIKE_TEST_JUDGE_KEY" in failed.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.parent.name == ".hydra" for p in files)
    assert (tmp_path / "run" / "config.yaml").read_text().count("api_key_env: OATLIKE_TEST_JUDGE_KEY") == 1
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    for output in (result.stdout, result.stderr, failed.stdout, failed.stderr):
        assert SECRET not in output


# ---------------------------------------------------------------------------------------- vllm serve


def vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory, tiny_untrained):
    """vLLM's OpenAI-compatible server (what `vllm serve` runs; the CPU build) of the tiny untrained Llama."""
    if not vllm_importable():
        pytest.skip("vLLM is not importable in this environment (install the cpu-vllm extra to run this test)")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    # the module rather than the `vllm serve` script: vllm-cpu's script looks up the version of a package
    # named "vllm", which the CPU build (package vllm-cpu) does not register
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_untrained),
               "--port", str(port), "--host", "127.0.0.1", "--served-model-name", "tiny-judge",
               "--max-model-len", "512", "--dtype", "float32", "--enforce-eager"]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 900
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"vllm serve did not start:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
                    if json.loads(reply.read())["data"]:
                        break
            except OSError:
                time.sleep(2)
        yield url
    finally:
        stop_process_group(process)


@pytest.mark.slow
def test_judge_protocol_against_vllm_serve(vllm_server, tmp_path, tiny_untrained):
    """The real OpenAI protocol path: model list, chat completions, usage; a tiny random model as the judge."""
    from transformers import AutoTokenizer

    template = tmp_path / "short.txt"
    template.write_text("Q: {prompt}\nA: {response_a}\nB: {response_b}\nBetter:")
    settings = {"base_url": vllm_server, "model": "tiny-judge", "template": str(template), "max_tokens": 1}
    # logit_bias forces the reply "A" (the first response shown): a judge with total position bias
    token_a = AutoTokenizer.from_pretrained(tiny_untrained).convert_tokens_to_ids("A")
    config = JudgeOracleConfig(**settings, cache=False, extra_body={"logit_bias": {str(token_a): 100}})
    oracle = build_oracle(config)
    assert oracle.compare(PROMPTS, GOOD, BAD).tolist() == [0.5, 0.5, 0.5]  # both orders cancel it
    metrics = oracle.metrics()
    assert (metrics["requests"], metrics["failures"], metrics["completion_tokens"]) == (6, 0, 6)
    assert metrics["prompt_tokens"] > 6 * 10
    # unforced, the random model rambles: replies without a verdict are retried, then ties, never a crash
    rambling = build_oracle(JudgeOracleConfig(**{**settings, "max_tokens": 4}, cache=False, malformed_retries=1))
    probabilities = rambling.compare(PROMPTS, GOOD, BAD)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert rambling.metrics()["requests"] >= 6


@pytest.mark.slow
def test_vllm_judge_in_the_online_loop(vllm_server, tmp_path, tiny_untrained):
    from transformers import AutoTokenizer

    template = tmp_path / "short.txt"
    template.write_text("Q: {prompt}\nA: {response_a}\nB: {response_b}\nBetter:")
    token_b = AutoTokenizer.from_pretrained(tiny_untrained).convert_tokens_to_ids("B")
    judge = [
        f"base_url={vllm_server}",
        "model=tiny-judge",
        f"template={template}",
        "max_tokens=1",
        "cache=false",
    ]
    config = make_config(
        tmp_path / "run",
        "steps=1",
        "eval.every=0",
        "data.max_eval_prompts=8",
        "oracle=judge",
        *(f"oracle.{option}" for option in judge),
        "eval.oracle=judge",  # (on a task the evaluation would otherwise be judged by its utility)
        *(f"eval.oracle.{option}" for option in judge),
    )
    for oracle in (config.oracle, config.eval.oracle):
        oracle.extra_body = {"logit_bias": {str(token_b): 100}}  # type: ignore[union-attr]  # the reply is always "B"
    summary = run(config, tmp_path / "run")
    assert summary["steps"] == 1 and summary["final/eval/win_rate"] == 0.5
    step = next(r for r in read_metrics(tmp_path / "run") if "train/loss" in r)
    assert step["oracle/requests"] == 2 * step["oracle/step_queries"] and step["oracle/failures"] == 0
