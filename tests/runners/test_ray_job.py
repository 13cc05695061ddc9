"""The README's cluster recipe as written: a real ``ray start --head`` node on loopback with token auth
(Ray 2.60 turns it on by itself once a token exists, and ``ray job submit`` then needs ``RAY_AUTH_MODE=token``
too), a short run submitted with ``ray job submit --working-dir`` whose entrypoint is the virtualenv's
interpreter (the cluster's PATH does not have it), and the run folder still there after the job ends
(the job's working directory, Ray's temporary copy, does not hold it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import ray_head

from oatlike.config import RAY_JOB_ENV, RUNS_DIR_ENV, runs_root

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"


def test_default_runs_folder_is_absolute_in_a_ray_job(monkeypatch, tmp_path):
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    monkeypatch.delenv(RAY_JOB_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runs_root() == Path("runs")  # in the working directory, as always
    monkeypatch.setenv(RAY_JOB_ENV, '{"runtime_env": {"working_dir": "gcs://_ray_pkg_0.zip"}}')
    assert runs_root() == tmp_path / "oatlike-runs"  # not in Ray's temporary copy of --working-dir
    monkeypatch.setenv(RUNS_DIR_ENV, "~/elsewhere")
    assert runs_root() == tmp_path / "elsewhere"


@pytest.mark.slow
def test_ray_job_submit_runs_and_keeps_the_run_folder(tmp_path):
    home = tmp_path / "home"  # Ray's token (~/.ray/auth_token) and the default runs folder land here
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OATLIKE_RUNS_DIR", "RAY_AUTH_TOKEN")}
    env.update(
        HOME=str(home),
        RAY_AUTH_MODE="token",
        PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin),  # not activated
        # the DeepSpeed ops built once for this user, not again for the new HOME
        TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/torch_extensions")),
    )
    generated = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    with ray_head(env) as address:
        with urllib.request.urlopen(f"{address}/api/authentication_mode") as answer:
            assert json.loads(answer.read())["authentication_mode"] == "token"
        submit = [RAY, "job", "submit", "--address", address, "--working-dir", ".", "--"]
        run = [sys.executable, "-m", "oatlike", "runner=ray", "ray.address=auto", "steps=2", "eval.every=0"]
        job = subprocess.run([*submit, *run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = job.stdout + job.stderr
    assert job.returncode == 0 and "succeeded" in output, output[-4000:]
    (summary_file,) = (home / "oatlike-runs").glob("*/*/summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["stop_reason"] == "completed" and summary["steps"] == 2
    run_folder = summary_file.parent
    assert f"run folder: {run_folder}" in output  # the job's output names where it is
    assert (run_folder / "ray.json").exists() and (run_folder / "metrics.jsonl").exists()
