"""Weights & Biases: the only module that imports ``wandb``.

``tracking.wandb.mode``: ``disabled`` (nothing is written), ``offline`` (a local ``wandb/`` folder that
``wandb sync`` uploads later; no network, no API key) or ``online``. An online run that cannot start (no API
key, checked without a network call; a server that does not answer within ``tracking.wandb.init_timeout``
or refuses the key) goes on offline with one warning line saying why and how to sync, or, with
``tracking.wandb.fallback=error``, stops before training with one line.

The config sent to W&B and the command line W&B records are redacted (:func:`redact_secrets`): a value
under a secret-like key, the password of a URL, the content of a secret-like environment variable (or of
the one a ``*_env`` key names), and a ``*_env`` value that is no variable name (a key pasted in its place)
become ``<redacted>``. Secrets come from the environment only, and W&B records no environment variables.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oatlike.errors import ConfigError
from oatlike.tracking.config import WandbConfig

log = logging.getLogger(__name__)

QUERY_AXIS = "oracle/queries"
"""The x-axis of every W&B chart (W&B's ``define_metric``): oracle queries, not steps."""
REDACTED = "<redacted>"
SECRET_KEY = re.compile(r"(^|[_.-])(api_?key|token|secret|password|passwd|credentials?|authorization|auth)$", re.I)
"""Config keys whose value is a secret (``api_key``, ``hf_token``; not ``max_tokens`` nor ``api_key_env``)."""
SECRET_VARIABLE = re.compile(r"(^|_)(key|token|secret|password|passwd|pass|credentials?|auth)(_|$)", re.I)
"""Environment variables whose value is a secret (``OPENAI_API_KEY``, ``HF_TOKEN``, ``WANDB_API_KEY``)."""
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
URL_PASSWORD = re.compile(r"(\w+://[^/\s:@]*:)[^/\s@]+@")
SHORTEST_SECRET = 8
"""Shorter values are not searched for in text (``1`` would redact every ``1``; under a secret-like key
they are still redacted)."""


class WandbLogger:
    """The run's W&B run; ``run_id`` continues an earlier one (a resumed run logs into the same W&B run)."""

    def __init__(self, config: WandbConfig, run_dir: Path, run_config: dict[str, Any], run_id: str | None = None):
        self.run = None
        mode = resolved_mode(config)
        if mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        secrets = find_secrets(run_config)
        options: dict[str, Any] = {
            "project": config.project,
            "entity": config.entity,
            "group": config.group,
            "name": config.name or run_dir.name,
            "tags": list(config.tags),
            "dir": str(run_dir),
            "config": redact_secrets(run_config, secrets),
            "id": run_id,
            "resume": "allow" if run_id else None,
        }
        with _redacted_argv(secrets):
            if mode == "offline":
                self.run = wandb.init(mode="offline", **options)
            else:
                self.run = self._start_online(config, options, secrets)
        # oracle queries, the sample-efficiency axis, is every chart's x-axis (each record carries it)
        self.run.define_metric(QUERY_AXIS)
        self.run.define_metric("*", step_metric=QUERY_AXIS)

    @staticmethod
    def _start_online(config: WandbConfig, options: dict[str, Any], secrets: set[str]) -> Any:
        """The online W&B run, or, when it cannot start, an offline one (``fallback=offline``) or a
        :class:`ConfigError` (``fallback=error``)."""
        import wandb

        server = redact_text(wandb.setup(wandb.Settings(mode="online")).settings.base_url, secrets)
        try:
            if wandb.login(prompt=False, verify=False):  # env, netrc, settings files: no network, no prompt
                return wandb.init(mode="online", settings=wandb.Settings(init_timeout=config.init_timeout), **options)
            problem = "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
        except wandb.Error as error:  # a malformed or refused key, a server that does not answer
            text = str(error).strip()
            reason = redact_text((text.splitlines() or [type(error).__name__])[0].rstrip("."), secrets)
            waited = f" in tracking.wandb.init_timeout={config.init_timeout:g} s" if "timed out" in text.lower() else ""
            problem = f"W&B at {server} could not start the run{waited}: {reason}"
        if config.fallback == "error":
            wandb.teardown()
            raise ConfigError(
                "tracking.wandb.mode",
                f"online: {problem}; or log offline and sync later: tracking.wandb.fallback=offline",
            )
        run = wandb.init(mode="offline", **options)
        log.warning(
            "%s; logging W&B offline instead: upload it later with `wandb sync %s`", problem, run.settings.sync_dir
        )
        return run

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else str(self.run.id)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def table(self, key: str, rows: list[dict[str, Any]], step: int, queries: int) -> None:
        """``rows`` (dicts with the same keys) as a W&B table under ``key`` (an evaluation's generations)."""
        if self.run is None or not rows:
            return
        import wandb

        columns: list[str | int] = list(rows[0])
        data = [[row.get(str(column)) for column in columns] for row in rows]
        self.run.log({key: wandb.Table(columns=columns, data=data), QUERY_AXIS: queries}, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def close(self) -> None:
        """Finish the W&B run and end W&B's session (the next run in this process reads its settings,
        environment and credentials afresh)."""
        if self.run is not None:
            import wandb

            self.run.finish()
            self.run = None
            wandb.teardown()


def resolved_mode(config: WandbConfig) -> str:
    """``tracking.wandb.mode``, or when it is null the ``WANDB_MODE`` environment variable (W&B's own: set to
    ``dryrun`` it means offline), else disabled."""
    if config.mode is not None:
        return config.mode
    mode = os.environ.get("WANDB_MODE", "disabled").strip().lower()
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode not in ("disabled", "offline", "online"):
        raise ConfigError(
            "tracking.wandb.mode",
            f"null takes the WANDB_MODE environment variable, which is {mode!r}: "
            "set it to disabled, offline or online, or set tracking.wandb.mode",
        )
    return mode


def find_secrets(config: dict[str, Any]) -> set[str]:
    """What must never reach W&B: the values under secret-like keys of ``config`` (and ``*_env`` values that
    are no variable name), and the values of the secret-like environment variables and of those the ``*_env``
    keys name; each at least :data:`SHORTEST_SECRET` characters long."""
    names = {name for name in os.environ if SECRET_VARIABLE.search(name)}
    found = set()
    for key, value in _leaves(config):
        if key.endswith("_env") and isinstance(value, str) and VARIABLE_NAME.fullmatch(value):
            names.add(value)
        elif _is_secret(key, value):
            found.add(str(value))
    variables = {os.environ.get(name, "") for name in names}
    return {value for value in found | variables if len(value) >= SHORTEST_SECRET}


def redact_secrets(value: Any, secrets: set[str], key: str = "") -> Any:
    """``value`` (a config: dicts, lists, scalars) with each secret (see :func:`find_secrets`) replaced by
    ``<redacted>``, and so are URL passwords."""
    if isinstance(value, dict):
        return {k: redact_secrets(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_secrets(v, secrets, key) for v in value]
    if _is_secret(key, value):
        return REDACTED
    return redact_text(value, secrets) if isinstance(value, str) else value


def redact_text(text: str, secrets: set[str]) -> str:
    """``text`` without URL passwords and without the ``secrets``."""
    text = URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _is_secret(key: str, value: Any) -> bool:
    """A value under a secret-like key, or a ``*_env`` value that is no variable name (a key pasted there)."""
    if value is None or value == "":
        return False
    if key.endswith("_env"):
        return not (isinstance(value, str) and VARIABLE_NAME.fullmatch(value))
    return bool(SECRET_KEY.search(key))


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """The scalars of a config with the key each sits under (a list's items under the list's key)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v, key)
    else:
        yield key, value


@contextmanager
def _redacted_argv(secrets: set[str]) -> Iterator[None]:
    """W&B records ``sys.argv`` (the overrides) when a run starts: show it the redacted command line."""
    argv = sys.argv
    sys.argv = [redact_text(arg, secrets) for arg in argv]
    try:
        yield
    finally:
        sys.argv = argv
