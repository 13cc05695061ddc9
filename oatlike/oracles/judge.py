"""The ``judge`` oracle: an LLM judge behind any OpenAI-compatible chat endpoint (LLM-as-judge).

Each pair is shown to the judge model through a pairwise template (``helpfulness``, ``summarization``, or
a text file of the user's with ``{prompt}``, ``{response_a}`` and ``{response_b}``). Judges favour one
position (Zheng et al. 2023, "Judging LLM-as-a-judge", §3.3), so with ``both_orders`` each pair is asked
twice, ``(a, b)`` and ``(b, a)``, and ``P(a ≻ b) = (v(a, b) + 1 − v(b, a)) / 2`` where ``v`` is 1 when the
judge prefers the response shown first, 0 when the second, 0.5 for a tie. A judge that always answers
"A" thus gives 0.5: its position bias cancels.

Robustness, in order: transport failures (connection, timeout, 429, 5xx) are retried with backoff by
:mod:`.http` and stop the run when the retries are spent; a reply without a recognisable verdict is asked
again ``malformed_retries`` times, then counted in ``failures`` and taken as a tie (0.5). A few such
ties are noise; a judge that seldom gives a verdict (a template the model does not follow, a model that
rambles) would have the run train on coin flips and report it completed, so once more than
``max_failure_rate`` of the verdicts asked of the judge failed (judged from the :data:`MIN_VERDICTS`-th
on, so that one early failure does not stop a run) the run stops with :class:`~oatlike.errors.OracleError`
naming ``oracle.max_failure_rate`` and showing such a reply. The rate is over verdicts, not pairs: with
``both_orders`` a pair asks two. Verdicts are cached on disk (SQLite) keyed by (model, template, prompt,
first, second), so a rerun or an evaluation of the same answers costs nothing (a cached verdict is not
asked of the judge, so it is not in the rate). Token usage and cost are counted (``oracle/prompt_tokens``,
``oracle/completion_tokens``, ``oracle/requests``, ``oracle/cost_usd``), and the verdicts asked
(``oracle/verdicts``).

The API key is read from the environment variable named by ``api_key_env``, sent only in the
``Authorization`` header, and never stored in the config, logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.errors import ConfigError, OracleError
from oatlike.oracles.base import Oracle, OracleSite
from oatlike.oracles.config import JudgeOracleConfig
from oatlike.oracles.http import HttpStatusError, JsonHttpClient, RequestFailed
from oatlike.warmstart import default_cache_dir

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
PLACEHOLDERS = ("{prompt}", "{response_a}", "{response_b}")
MIN_VERDICTS = 10
"""Verdicts asked of the judge before ``max_failure_rate`` is judged: one early failure is not a rate."""

# "Preferred: A", "Verdict = [B]", "**Winner:** Response A", "better summary: tie"
_LABELLED = re.compile(
    r"(?:preferred|preference|verdict|winner|better|choice|answer)\s*(?:response|summary|output)?\s*[:=]\s*"
    r"[\s*\[(\"'`]*(?:response\s+|summary\s+|output\s+)?((?-i:A|B)|tie)\b",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.IGNORECASE)  # MT-Bench style: [[A]]
_BARE = re.compile(r"^\W*(?:response\s+|summary\s+|output\s+)?(A|B)\W*$", re.IGNORECASE)


def parse_verdict(reply: str) -> float | None:
    """1.0 when the reply prefers the first response (A), 0.0 the second (B), 0.5 a tie; None if no verdict.

    The last labelled verdict wins (a judge may discuss "A" before concluding "Preferred: B").
    """
    matches = _LABELLED.findall(reply) or _BRACKETED.findall(reply) or _BARE.findall(reply.strip())
    if not matches:
        return None
    choice = matches[-1].upper()
    return {"A": 1.0, "B": 0.0}.get(choice, 0.5)


def load_template(spec: str, key: str = "oracle.template") -> str:
    """The text of a built-in template (by name) or of a template file; it must hold every placeholder."""
    builtin = TEMPLATES / f"{spec}.txt"
    path = builtin if builtin.is_file() else Path(spec).expanduser()
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.txt")))
        raise ConfigError(key, f"no template named or file {spec!r}; use {names} or a text file path")
    text = path.read_text()
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise ConfigError(key, f"{path} lacks {', '.join(missing)}; a template needs {', '.join(PLACEHOLDERS)}")
    return text


def fill_template(template: str, prompt: str, first: str, second: str) -> str:
    """The template with the placeholders replaced in one pass (text inside the responses is left alone)."""
    values = {"prompt": prompt, "response_a": first, "response_b": second}
    return re.sub(r"\{(prompt|response_a|response_b)\}", lambda m: values[m[1]], template)


class VerdictCache:
    """Judge verdicts on disk (SQLite, safe across threads and processes), keyed by a SHA-256 of the inputs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=60, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict REAL, reply TEXT)")

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()

    def get(self, key: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put(self, key: str, verdict: float, reply: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)", (key, verdict, reply))


class JudgeOracle(Oracle):
    name = "judge"

    def __init__(self, config: JudgeOracleConfig, cache_dir: Path | None = None, key: str = "oracle") -> None:
        super().__init__(config)
        assert config.model is not None  # validated by the config
        self.config = config
        self.key = key
        self.model = config.model
        self.template = load_template(config.template, f"{key}.template")
        api_key = os.environ.get(config.api_key_env)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._has_api_key = bool(api_key)
        self.client = JsonHttpClient(
            config.base_url,
            config.timeout_seconds,
            config.max_retries,
            config.backoff_seconds,
            headers=headers,
            server="the judge endpoint",
        )
        self.cache: VerdictCache | None = None
        if config.cache:
            default = (cache_dir or default_cache_dir()) / "judge.sqlite"
            self.cache = VerdictCache(Path(config.cache_path or default).expanduser())
        self._check_endpoint()

    @classmethod
    def build(cls, config: JudgeOracleConfig, site: OracleSite) -> JudgeOracle:
        return cls(config, site.cache_dir, site.key)

    # ------------------------------------------------------------------------------------------ endpoint

    def _auth_error(self, status: int) -> ConfigError:
        env = self.config.api_key_env
        if not self._has_api_key:
            return ConfigError(
                f"{self.key}.api_key_env", f"the judge endpoint wants an API key (HTTP {status}); set ${env}"
            )
        return ConfigError(f"{self.key}.api_key_env", f"the judge endpoint refused the key in ${env} (HTTP {status})")

    def _check_endpoint(self) -> None:
        """Fail fast, with one line naming the key to fix, when the endpoint is down, refuses us, or lacks the model."""
        try:
            reply = self.client.get("/models", retries=0)
        except RequestFailed as error:
            raise ConfigError(
                f"{self.key}.base_url", f"cannot reach the judge endpoint {self.client.base_url} ({error.problem})"
            ) from None
        except HttpStatusError as error:
            if error.status in (401, 403):
                raise self._auth_error(error.status) from None
            if error.status in (404, 405):
                return  # a compatible server without a model list: the first request will tell
            raise ConfigError(f"{self.key}.base_url", str(error)) from None
        served = [m.get("id") for m in reply.get("data", [])] if isinstance(reply, dict) else []
        if served and self.model not in served:
            raise ConfigError(
                f"{self.key}.model",
                f"{self.client.base_url} serves {', '.join(map(str, served[:5]))}, not {self.model!r}",
            )

    def _chat(self, message: str) -> str:
        """The judge's reply text to one user message (transport retries inside; usage counted)."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": message}],
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.sampling_temperature,
            **self.config.extra_body,
        }
        try:
            reply = self.client.post("/chat/completions", payload, on_retry=lambda: self.count("retries"))
        except HttpStatusError as error:
            if error.status in (401, 403):
                raise OracleError(str(self._auth_error(error.status))) from None
            raise OracleError(f"{self.key}.base_url: {error}") from None
        except RequestFailed as error:
            raise OracleError(f"{self.key}.base_url: {error}") from None
        self.count("requests")
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            self.count("prompt_tokens", prompt_tokens)
            self.count("completion_tokens", completion_tokens)
            cost = prompt_tokens * self.config.prompt_cost_per_million
            cost += completion_tokens * self.config.completion_cost_per_million
            self.count("cost_usd", cost / 1e6)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return ""  # no reply text: malformed, asked again
        return content if isinstance(content, str) else ""

    # ----------------------------------------------------------------------------------------- verdicts

    def verdict(self, prompt: str, first: str, second: str) -> float:
        """1 when the judge prefers ``first`` (shown as A), 0 ``second``, 0.5 a tie or no verdict (a failure:
        :class:`~oatlike.errors.OracleError` once they are more than ``max_failure_rate`` of the verdicts)."""
        cache_key = VerdictCache.key(self.model, self.template, prompt, first, second)
        if self.cache is not None:
            cached = self.cache.get(cache_key)
            if cached is not None:
                self.count("cache_hits")
                return cached
        message = fill_template(self.template, prompt, first, second)
        reply = ""
        for attempt in range(self.config.malformed_retries + 1):
            if attempt:
                self.count("retries")
            reply = self._chat(message)
            verdict = parse_verdict(reply)
            if verdict is not None:
                if self.cache is not None:
                    self.cache.put(cache_key, verdict, reply)
                self._count_verdict()
                return verdict
        log.warning("judge reply without a verdict, %d times; counted as a tie: %r", attempt + 1, reply[:120])
        self._count_verdict(failed_reply=reply)
        return 0.5

    def _count_verdict(self, failed_reply: str | None = None) -> None:
        """Count one verdict asked of the judge (``failed_reply``: the last reply of one that came without a
        verdict) and stop the run when failures are more than ``max_failure_rate`` of the verdicts asked."""
        with self._lock:
            asked = self.counters["verdicts"] = self.counters.get("verdicts", 0) + 1
            if failed_reply is None:
                return
            self.failures += 1
            failures = self.failures
        limit = self.config.max_failure_rate
        if asked < MIN_VERDICTS or failures / asked <= limit:
            return
        shown = failed_reply if len(failed_reply) <= 80 else failed_reply[:79] + "…"
        tries = self.config.malformed_retries + 1
        raise OracleError(
            f"{self.key}.max_failure_rate: {failures} of the {int(asked)} verdicts asked of the judge "
            f"({100 * failures / asked:.0f}%) came without one after {tries} {'try' if tries == 1 else 'tries'} "
            f"each, more than the {100 * limit:g}% allowed; a reply: {shown!r}; have {self.key}.template ask for "
            f"'Preferred: A', 'B' or 'tie' (or use a model that follows it), or raise {self.key}.max_failure_rate"
        )

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        probabilities = []
        for prompt, a, b in zip(prompts, responses_a, responses_b, strict=True):
            probability = self.verdict(prompt, a, b)
            if self.config.both_orders:
                probability = (probability + 1.0 - self.verdict(prompt, b, a)) / 2.0
            probabilities.append(probability)
        return np.array(probabilities)
