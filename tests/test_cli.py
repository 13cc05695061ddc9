"""The real command line in subprocesses: a run, a sweep, W&B offline, help, and one-line errors."""

from __future__ import annotations

import json
import re

import pytest
from helpers import oatlike, read_metrics


@pytest.fixture(autouse=True)
def _built_warm_start(warm_policy):
    """Build the default warm start in this process first: the commands below then load it from the cache
    (a subprocess building it would spend its timeout on it on a busy machine)."""


def test_cli_runs_an_experiment_end_to_end(tmp_path):
    """... its output redirected (to pipes, as a batch job's to a file): one progress line per
    tracking.log_every_steps, no carriage-return redraws; the run's oatlike.log starts with the start line."""
    result = oatlike("steps=3", "eval.every=0", "run_dir=run", "tracking.log_every_steps=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eval/win_rate" in result.stdout and "step 0  final" in result.stdout  # the summary table
    run = tmp_path / "run"
    assert {"config.yaml", "metrics.jsonl", "summary.json", "oatlike.log", "eval", "checkpoints"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / ".hydra" / "overrides.yaml").exists()
    assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert "Traceback" not in result.stderr
    assert "\r" not in result.stderr + result.stdout
    console = [line for line in result.stderr.splitlines() if line.startswith("oatlike: ")]
    assert console[0] == "oatlike: start version=0.1.0 step=0/3 run_dir=run"
    line = r"oatlike: step=2/3 queries=\d+ loss=[\d.]+ accuracy=[\d.]+ utility=[\d.]+ .* eta=[\d:]+"
    assert re.fullmatch(line, console[1])
    assert console[2].startswith("oatlike: end stop_reason=completed step=3/3 queries=") and len(console) == 3
    log = (run / "oatlike.log").read_text().splitlines()
    command = "oatlike steps=3 eval.every=0 run_dir=run tracking.log_every_steps=2"
    assert log[0].endswith(f"[oatlike.cli][INFO] oatlike 0.1.0 started: {command}; run folder {run.resolve()}")
    assert any(line.endswith(console[1]) for line in log)  # the progress lines too


@pytest.mark.slow
def test_a_failed_runs_error_line_is_in_its_log(tmp_path):
    result = oatlike("data=files", "data.path=missing.jsonl", "run_dir=run", cwd=tmp_path)
    assert result.returncode == 1
    error = "oatlike: error: data.path: no such file 'missing.jsonl'; point it at a json/jsonl/parquet/csv file"
    assert result.stderr.splitlines()[-1] == error and result.stderr.count("data.path") == 1  # once on the console
    log = (tmp_path / "run" / "oatlike.log").read_text().splitlines()
    assert "oatlike 0.1.0 started: oatlike data=files data.path=missing.jsonl run_dir=run" in log[0]
    assert log[-1].endswith(f"[oatlike.cli][ERROR] {error}")


@pytest.mark.slow
def test_python_dash_m_and_default_run_folder(tmp_path):
    result = oatlike("steps=1", "eval.every=0", "algo=simpo", cwd=tmp_path, module=True)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = list((tmp_path / "runs").glob("*/*-simpo-arithmetic-eval.every=0,steps=1"))  # named by its overrides
    assert len(runs) == 1 and (runs[0] / "summary.json").exists()


@pytest.mark.slow
def test_multirun_sweep(tmp_path):
    result = oatlike("-m", "steps=1", "eval.every=0", "seed=0,1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    seeds = sorted(
        json.loads((s.parent / "config.yaml").read_text().split("seed: ")[1].split("\n")[0]) for s in summaries
    )
    assert seeds == [0, 1]


@pytest.mark.slow
def test_wandb_offline_logs_the_run(tmp_path):
    result = oatlike(
        "steps=2", "eval.every=0", "run_dir=run", "tracking.wandb.mode=offline", cwd=tmp_path, drop_env=("WANDB_MODE",)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    offline_runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_help_lists_groups_and_keys(tmp_path):
    result = oatlike("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "algo     apl, bpo, cdpo, copo, dpo, ipo, rdpo, sea, selm, simpo, slic, slic_hf, xpo" in result.stdout
    assert "sync_every = 1" in result.stdout and "learner.zero_stage = 0" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["loss.beta=-1"], 2, "oatlike: error: loss.beta: must be > 0, got -1.0"),
        (["algo=dpoo"], 2, "oatlike: error: unknown algo 'dpoo' (did you mean 'dpo'?)"),
        (["loss.bta=1"], 2, "oatlike: error: unknown config key 'loss.bta' (did you mean 'loss.beta'?)"),
        (["data=files", "data.path=missing.jsonl"], 1, "oatlike: error: data.path: no such file 'missing.jsonl'"),
        (
            ["model=hf", "model.pretrain=./no-such-model"],
            1,
            "oatlike: error: model.pretrain: no such folder './no-such-model'",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr(tmp_path, args, status, message):
    result = oatlike(*args, "run_dir=run", cwd=tmp_path)
    assert result.returncode == status
    errors = [line for line in result.stderr.splitlines() if line.startswith("oatlike: error:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_same_seed_same_run_across_processes(tmp_path):
    """Every random stream derives from the seed through a stable hash: two processes agree exactly."""
    losses = []
    for name in ("a", "b"):
        result = oatlike("steps=3", "eval.every=0", f"run_dir={name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        losses.append([r["train/loss"] for r in read_metrics(tmp_path / name) if "train/loss" in r])
    assert losses[0] == losses[1]
