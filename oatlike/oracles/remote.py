"""The ``remote`` oracle: the client of an oracle served by ``oatlike serve-oracle`` (see :mod:`.serve`).

At start-up it asks the server's ``/health`` once and stops at once, with one line naming ``oracle.url``,
when nothing answers: a run must not generate for minutes before finding out that its oracle is down.
During the run each chunk of ``batch_size`` pairs is one ``POST /compare`` (``concurrency`` in flight);
failures are retried with exponential backoff, and when the retries are spent the run stops with
:class:`~oatlike.errors.OracleError`, keeping what it collected.
"""

from __future__ import annotations

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

    def _post(self, path: str, payload: dict, field: str) -> np.ndarray:
        try:
            reply = self.client.post(path, payload, on_retry=lambda: self.count("retries"))
        except OracleError as error:
            raise OracleError(f"{self.key}.url: {error}") from None
        return np.asarray(reply[field], dtype=np.float64)

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        return self._post(
            "/compare", {"prompts": prompts, "responses_a": responses_a, "responses_b": responses_b}, "probabilities"
        )

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return self._post("/score", {"prompts": prompts, "responses": responses}, "scores")
