"""What reaches W&B: the run's config with every secret redacted, and nothing secret in its files."""

from __future__ import annotations

import sys

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
