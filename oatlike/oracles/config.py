"""Configs of the preference oracles (``oracle=rule|reward_model|pairrm|judge|remote``) and of serving one
(``oatlike serve-oracle``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from oatlike.models.config import DTYPE_NAMES
from oatlike.schema import Registry, check, check_at_least, check_choice, check_probability

ORACLES = Registry("oracle")
"""The oracle kinds by name: their schema and a factory ``build(config, site) -> Oracle``."""


@dataclass
class OracleConfig:
    """The preference oracle that labels pairs."""

    name: str = MISSING
    """Oracle kind: rule (Bradley–Terry annotators over the task's true utility), reward_model, pairrm, judge
    (LLM-as-judge), or remote (an oracle served by `oatlike serve-oracle`)."""
    label_mode: str = "sampled"
    """``sampled``: a Bernoulli draw from P(a ≻ b); ``threshold``: a wins when P(a ≻ b) > 0.5."""
    max_queries: int | None = None
    """Query budget: the run ends cleanly (final eval, checkpoint, summary) before a step could exceed it."""
    batch_size: int = 64
    """Pairs (or responses to score) per oracle call: one model forward pass, or one HTTP request."""
    concurrency: int = 1
    """Oracle calls in flight at once (threads): raise it for servers and APIs; 1 for a local model on CPU."""

    def __post_init__(self) -> None:
        check_choice(self.label_mode, ("sampled", "threshold"), "label_mode")
        check(self.max_queries is None or self.max_queries >= 1, "max_queries", "must be >= 1 or null")
        check_at_least(self, 1, "batch_size", "concurrency")


@ORACLES.register("rule", "oatlike.oracles.rule:RuleOracle.build")
@dataclass
class RuleOracleConfig(OracleConfig):
    """Bradley–Terry annotators over the task's true utility: P(a ≻ b) = σ((u(a) − u(b)) / temperature)."""

    name: str = "rule"
    temperature: float = 0.1
    """Bradley–Terry temperature: P(a ≻ b) = σ((u(a) − u(b)) / temperature); lower is more decisive."""
    label_noise: float = 0.0
    """Probability that an annotator flips the label (a population with careless raters)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 <= self.label_noise <= 0.5, "label_noise", f"must be in [0, 0.5], got {self.label_noise}")


@dataclass
class ModelOracleConfig(OracleConfig):
    """An oracle computed by a local model on the run's device."""

    temperature: float = 1.0
    """Bradley–Terry temperature: P(a ≻ b) = σ(gap / temperature); the gap is r(a) − r(b) for a reward
    model, the logit l(a, b) − l(b, a) for PairRM (what llm-blender's ``compare`` returns)."""
    dtype: str = "float32"
    """Model dtype: float32, bfloat16 or float16."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check_choice(self.dtype, DTYPE_NAMES, "dtype")


@ORACLES.register("reward_model", "oatlike.oracles.reward_model:RewardModelOracle.build")
@dataclass
class RewardModelOracleConfig(ModelOracleConfig):
    """A reward model (any ``AutoModelForSequenceClassification`` with one output) as a Bradley–Terry oracle:
    P(a ≻ b) = σ((r(a) − r(b)) / temperature); ``oracle.model`` is required."""

    name: str = "reward_model"
    model: str | None = None
    """Hub name or local folder of an ``AutoModelForSequenceClassification`` with one output (the reward)."""
    tokenizer: str | None = None
    """Tokenizer name or folder when it differs from ``model``."""
    chat_template: bool = False
    """Format each (prompt, response) as a user/assistant chat with the tokenizer's chat template (as most
    reward models were trained); false: the prompt text followed by the response text."""
    max_length: int = 1024
    """Longest reward-model input in tokens; longer inputs lose their start, so the response is kept."""
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.model), "model", "oracle=reward_model needs oracle.model=<hub name or local folder>")
        check_at_least(self, 8, "max_length")


@ORACLES.register("pairrm", "oatlike.oracles.pairrm:PairRMOracle.build")
@dataclass
class PairRMOracleConfig(ModelOracleConfig):
    """PairRM (llm-blender), the DeBERTa-v3 pairwise ranker, loaded through transformers alone."""

    name: str = "pairrm"
    model: str = "llm-blender/PairRM-hf"
    """PairRM checkpoint: hub name or folder, in the PairRM-hf format (config.json + safetensors + tokenizer)
    or the original llm-blender/PairRM format (pytorch_model.bin; needs ``backbone``)."""
    backbone: str = "microsoft/deberta-v3-large"
    """Only for the original format: the DeBERTa-v3 whose config and tokenizer the checkpoint was trained from."""
    source_max_length: int = 1224
    """Most tokens of the prompt (PairRM's training setting)."""
    candidate_max_length: int = 412
    """Most tokens of each response, plus half of what the prompt leaves unused (PairRM's setting)."""
    both_orders: bool = True
    """Compare (a, b) and (b, a) and combine them, cancelling position bias (llm-blender's default)."""
    batch_size: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("source_max_length", "candidate_max_length"):
            check(getattr(self, key) >= 8, key, f"must be >= 8, got {getattr(self, key)}")


@dataclass
class HttpOracleConfig(OracleConfig):
    """An oracle behind HTTP: timeouts and retries."""

    timeout_seconds: float = 60.0
    """Seconds to wait for one HTTP reply."""
    max_retries: int = 3
    """Retries of a request after a connection error, a timeout, HTTP 429 or 5xx; then the run stops."""
    backoff_seconds: float = 0.5
    """Wait before the first retry; doubled after each (exponential backoff)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.timeout_seconds > 0, "timeout_seconds", f"must be > 0, got {self.timeout_seconds}")
        check_at_least(self, 0, "max_retries", "backoff_seconds")


@ORACLES.register("remote", "oatlike.oracles.remote:RemoteOracle.build")
@dataclass
class RemoteOracleConfig(HttpOracleConfig):
    """An oracle served over HTTP by ``oatlike serve-oracle oracle=...`` (Ray Serve); ``oracle.url`` is required."""

    name: str = "remote"
    url: str | None = None
    """Address of an oracle served by ``oatlike serve-oracle`` (for example http://127.0.0.1:8000)."""
    concurrency: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            bool(self.url) and str(self.url).startswith(("http://", "https://")),
            "url",
            f"oracle=remote needs oracle.url=http://<host>:<port> (of `oatlike serve-oracle`), got {self.url!r}",
        )


@ORACLES.register("judge", "oatlike.oracles.judge:JudgeOracle.build")
@dataclass
class JudgeOracleConfig(HttpOracleConfig):
    """LLM-as-judge through any OpenAI-compatible chat endpoint; the API key comes from the environment
    variable named by ``oracle.api_key_env``, never from the config; ``oracle.model`` is required."""

    name: str = "judge"
    base_url: str = "https://api.openai.com/v1"
    """OpenAI-compatible endpoint (``…/v1``): OpenAI, vLLM's ``vllm serve``, or any compatible server."""
    model: str | None = None
    """Judge model name as the endpoint knows it."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never in the config)."""
    template: str = "helpfulness"
    """Pairwise prompt: helpfulness, summarization, or a text file with {prompt}, {response_a}, {response_b}."""
    both_orders: bool = True
    """Ask with the responses in both orders and average, cancelling the judge's position bias."""
    max_tokens: int = 256
    """Most tokens of a judge reply."""
    sampling_temperature: float = 0.0
    """Sampling temperature of the judge model."""
    malformed_retries: int = 2
    """Asks again after a reply without a verdict; then the pair counts as a failure and a tie (0.5)."""
    max_failure_rate: float = 0.2
    """Most failures (verdicts asked of the judge that came without one after ``malformed_retries``) per
    verdict asked; above it the run stops with an error instead of training on ties. Judged from the 10th
    verdict on (one early failure does not stop a run); with ``both_orders`` a pair is two verdicts; 1: never."""
    cache: bool = True
    """Keep every verdict in an on-disk cache keyed by (model, template, prompt, first, second)."""
    cache_path: str | None = None
    """SQLite file of the cache (default: judge.sqlite in ``cache_dir``)."""
    prompt_cost_per_million: float = 0.0
    """USD per million prompt tokens, for ``oracle/cost_usd``."""
    completion_cost_per_million: float = 0.0
    """USD per million completion tokens, for ``oracle/cost_usd``."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra fields of every chat request (for example vLLM's structured-output options)."""
    batch_size: int = 1
    concurrency: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.model), "model", "oracle=judge needs oracle.model=<model name of the endpoint>")
        check(
            self.base_url.startswith(("http://", "https://")),
            "base_url",
            f"must start with http:// or https://, got {self.base_url!r}",
        )
        check(bool(self.api_key_env), "api_key_env", "must name an environment variable (e.g. OPENAI_API_KEY)")
        check_at_least(self, 1, "max_tokens")
        check_at_least(self, 0, "malformed_retries")
        check_probability(self, "max_failure_rate")
        for key in ("prompt_cost_per_million", "completion_cost_per_million", "sampling_temperature"):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")


@dataclass
class ServeConfig:
    """``oatlike serve-oracle``: the configured oracle served over HTTP by Ray Serve."""

    host: str = "127.0.0.1"
    """Address the HTTP server listens on (0.0.0.0: every interface)."""
    port: int = 8000
    """HTTP port."""
    replicas: int = 1
    """Copies of the oracle answering in parallel (Ray Serve replicas)."""
    cpus_per_replica: float = 1.0
    """Ray CPUs reserved by each replica."""
    gpus_per_replica: float = 0.0
    """Ray GPUs reserved by each replica (a reward model on a GPU)."""
    max_batch_requests: int = 16
    """Dynamic batching: concurrent requests merged into one oracle call, at most this many."""
    batch_wait_seconds: float = 0.01
    """Dynamic batching: how long a request waits for others to join its batch."""
    ray_address: str | None = None
    """Ray cluster to run on: null starts a local Ray in this process; auto joins a running cluster."""

    def __post_init__(self) -> None:
        check(1 <= self.port <= 65535, "port", f"must be in 1..65535, got {self.port}")
        check_at_least(self, 1, "replicas")
        check_at_least(self, 0, "cpus_per_replica", "gpus_per_replica")
        check_at_least(self, 1, "max_batch_requests")
        check_at_least(self, 0, "batch_wait_seconds")
