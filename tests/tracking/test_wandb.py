"""What reaches W&B: the run's config with every secret redacted, and nothing secret in its files."""

from __future__ import annotations

import sys

import pytest

from oatlike.tracking.config import WandbConfig
from oatlike.tracking.wandb_logger import REDACTED, WandbLogger, find_secrets, redact_secrets

JUDGE_KEY = "sk-judge-0123456789abcdef"
PASTED_KEY = "sk-pasted-fedcba9876543210"
HUB_TOKEN = "hf_token_abcdefgh12345678"
URL_PASSWORD = "pw-12345678"


def run_config() -> dict:
    return {
        "oracle": {"name": "judge", "api_key_env": "MY_JUDGE_KEY", "max_tokens": 16},
        "eval": {"oracle": {"name": "judge", "api_key_env": PASTED_KEY}},  # a key pasted in place of a name
        "model": {"hf_token": HUB_TOKEN, "pretrain": "tiny"},
        "server": {"url": f"http://user:{URL_PASSWORD}@oracle.example:8000/compare"},
        "seed": 1,
    }


def test_secrets_are_found_and_redacted(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", JUDGE_KEY)
    secrets = find_secrets(run_config())
    assert {JUDGE_KEY, PASTED_KEY, HUB_TOKEN} <= secrets
    redacted = redact_secrets(run_config(), secrets)
    assert redacted["model"] == {"hf_token": REDACTED, "pretrain": "tiny"}
    assert redacted["eval"]["oracle"]["api_key_env"] == REDACTED
    assert redacted["oracle"] == run_config()["oracle"]  # a variable's name and max_tokens are no secrets
    assert URL_PASSWORD not in str(redacted) and "user:" in redacted["server"]["url"]
    assert redacted["seed"] == 1


def test_no_secret_reaches_the_offline_run_files(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # (the tests' default: disabled)
    monkeypatch.setenv("MY_JUDGE_KEY", JUDGE_KEY)
    monkeypatch.setattr(sys, "argv", ["oatlike", f"eval.oracle.api_key_env={PASTED_KEY}", f"hf_token={HUB_TOKEN}"])
    logger = WandbLogger(WandbConfig(mode="offline"), tmp_path, run_config())
    logger.log({"loss": 0.5}, step=1)
    logger.close()
    files = [path for path in (tmp_path / "wandb").rglob("*") if path.is_file()]
    records = b"".join(path.read_bytes() for path in files if path.suffix == ".wandb")
    assert b"api_key_env" in records and REDACTED.encode() in records  # the config was sent, redacted
    written = b"".join(path.read_bytes() for path in files)  # and the logs, the metadata
    for secret in (JUDGE_KEY, PASTED_KEY, HUB_TOKEN, URL_PASSWORD):
        assert secret.encode() not in written, secret


def test_an_offline_run_read_back_has_the_query_axis_and_the_generations(tmp_path, monkeypatch):
    import json

    from wandb.proto import wandb_internal_pb2

    from oatlike.config import compose
    from oatlike.experiment import run

    monkeypatch.setenv("WANDB_MODE", "offline")  # W&B's own variable, with tracking.wandb.mode left null
    config = compose(f"run_dir={tmp_path}", "tracking.progress=false", "steps=2", "eval.every=0")
    assert config.tracking.wandb.mode is None
    run(config, tmp_path)
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    records = next(folder.glob("run-*.wandb")).read_bytes()
    every_chart = wandb_internal_pb2.MetricRecord(glob_name="*", step_metric="oracle/queries")
    assert every_chart.SerializeToString() in records  # every metric's x-axis is oracle/queries
    tables = sorted((folder / "files" / "media" / "table" / "eval").glob("generations_*.table.json"))
    assert [t.name.split("_")[1] for t in tables] == ["0", "2"]  # the evaluations at steps 0 and 2
    table = json.loads(tables[-1].read_text())
    assert table["columns"][:4] == ["prompt", "answer", "reference", "utility"]
    saved = [json.loads(line) for line in (tmp_path / "eval" / "step_000002.jsonl").read_text().splitlines()]
    assert [row[0] for row in table["data"]] == [record["prompt"] for record in saved]
    assert [row[1] for row in table["data"]] == [record["answer"] for record in saved]


def test_wandb_mode_null_follows_the_environment(monkeypatch):
    from oatlike.errors import ConfigError
    from oatlike.tracking.wandb_logger import resolved_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolved_mode(WandbConfig()) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert resolved_mode(WandbConfig()) == "offline" and resolved_mode(WandbConfig(mode="disabled")) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ConfigError, match=r"^tracking\.wandb\.mode: null takes the WANDB_MODE environment variable"):
        resolved_mode(WandbConfig())


def test_a_sweeps_runs_are_grouped_and_tagged_with_their_overrides(tmp_path, monkeypatch):
    from wandb.proto import wandb_internal_pb2

    from oatlike import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cli.main(["-m", "seed=0,1", "steps=1", "eval.every=0", "data.max_eval_prompts=4", "tracking.progress=false"])
    jobs = sorted(path.parent for path in tmp_path.glob("runs/multirun/*/*/*/summary.json"))
    assert len(jobs) == 2
    sweep = jobs[0].parent.name  # the sweep's folder: runs/multirun/<date>/<time>/<job>
    for job, seed in zip(jobs, ("0", "1"), strict=True):
        records = next(job.glob("wandb/offline-run-*/run-*.wandb")).read_bytes()
        assert wandb_internal_pb2.RunRecord(run_group=sweep).SerializeToString() in records
        assert wandb_internal_pb2.RunRecord(tags=[f"seed={seed}"]).SerializeToString() in records
        assert "group: " + sweep in (job / "config.yaml").read_text()
