"""The ``remote`` oracle: the client of an oracle served by ``oatlike serve-oracle`` (see :mod:`.serve`).

At start-up it asks the server's ``/health`` once and stops at once, with one line naming ``oracle.url``,
when nothing answers: a run must not generate for minutes before finding out that its oracle is down.
During the run each chunk of ``batch_size`` pairs is one ``POST /compare`` (``concurrency`` in flight);
failures are retried with exponential backoff, and when the retries are spent the run stops with
:class:`~oatlike.errors.OracleError`, keeping what it collected.

A reply that is not JSON is a transport failure (a proxy's error page, a body cut off) and is retried
like one (:mod:`.http`). A reply that is JSON of the wrong shape — a list, an object without
``probabilities``, strings for numbers — is not: it is what that server answers to this request (a
server of another version, or not an oatlike one), and asking again would only delay the same answer.
It stops the run at once with one line naming ``oracle.url`` and what was wrong; the values themselves
(one per pair, finite, in [0, 1]) are checked by :class:`~oatlike.oracles.base.Oracle` as every kind's are.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from oatlike.errors import ConfigError, OracleError
from oatlike.oracles.base import Oracle, OracleSite
from oatlike.oracles.config import RemoteOracleConfig
from oatlike.oracles.http import HttpStatusError, JsonHttpClient, RequestFailed


class RemoteOracle(Oracle):
    name = "remote"

    def __init__(self, config: RemoteOracleConfig, key: str = "oracle") -> None:
        super().__init__(config)
        assert config.url is not None  # validated by the config
        self.key = key
        self.client = JsonHttpClient(
            config.url, config.timeout_seconds, config.max_retries, config.backoff_seconds, server="the oracle server"
        )
        health = self.health()
        self.served_oracle = str(health.get("oracle", "?"))
        self._has_score = bool(health.get("has_score", False))

    @classmethod
    def build(cls, config: RemoteOracleConfig, site: OracleSite) -> RemoteOracle:
        return cls(config, site.key)

    def health(self) -> dict:
        """The server's ``/health`` reply (one attempt); a one-line :class:`ConfigError` when none comes."""
        try:
            reply = self.client.get("/health", retries=0)
        except (RequestFailed, HttpStatusError) as error:
            problem = error.problem if isinstance(error, RequestFailed) else f"HTTP {error.status}"
            raise ConfigError(
                f"{self.key}.url",
                f"no oracle server answers at {self.client.base_url} ({problem}); "
                f"start one with `oatlike serve-oracle oracle=<kind> serve.port=<port>`",
            ) from None
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            raise ConfigError(f"{self.key}.url", f"{self.client.base_url} is not an oatlike oracle server")
        return reply

    @property
    def has_score(self) -> bool:
        return self._has_score

    def where(self) -> str:
        """Errors about the answers name ``oracle.url`` and the server's address."""
        return f"{self.key}.url: the oracle server at {self.client.base_url}"

    def _post(self, path: str, payload: dict, field: str) -> np.ndarray:
        try:
            reply = self.client.post(path, payload, on_retry=lambda: self.count("retries"))
        except OracleError as error:
            raise OracleError(f"{self.key}.url: {error}") from None
        return np.asarray(self._numbers(reply, path, field), dtype=np.float64)

    def _numbers(self, reply: Any, path: str, field: str) -> list[float]:
        """``reply[field]``, a list of numbers; otherwise one line saying what the reply to ``path`` was."""
        answered = f"{self.where()} answered POST {path} with"
        if not isinstance(reply, dict):
            raise OracleError(
                f"{answered} a JSON {_json_kind(reply)} ({_shortened(reply)}), not an object with {field!r}; "
                f"is it an `oatlike serve-oracle` of this version?"
            )
        if field not in reply:
            raise OracleError(f"{answered} an object without {field!r}: {_shortened(reply)}")
        values = reply[field]
        if not isinstance(values, list):
            raise OracleError(f"{answered} {field!r} as a JSON {_json_kind(values)}, not a list of numbers")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OracleError(
                    f"{answered} the JSON {_json_kind(value)} {_shortened(value)} at index {index} of {field!r}, "
                    f"not a number"
                )
        return values

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        return self._post(
            "/compare", {"prompts": prompts, "responses_a": responses_a, "responses_b": responses_b}, "probabilities"
        )

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return self._post("/score", {"prompts": prompts, "responses": responses}, "scores")


def _json_kind(value: Any) -> str:
    """What ``value`` is in JSON's words: object, list, string, number, boolean, null."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _shortened(value: Any, limit: int = 80) -> str:
    """``value`` as JSON on one line, cut to ``limit`` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
