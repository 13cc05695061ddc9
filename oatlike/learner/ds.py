"""Everything DeepSpeed: environment, config building, initialisation, gathering weights, engine state.

No other module imports ``deepspeed``. On a machine without CUDA the CPU accelerator is selected and
communication falls back to gloo (no oneCCL or IPEX needed). A single process gets the rendezvous
variables of a world of one. DeepSpeed's shared-memory all-reduce op for CPUs (a ~35 s JIT compile on first
use) is built only when asked for (``learner.cpu_shm_allreduce``), since it helps only with several ranks.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oatlike.learner.config import LearnerConfig
from oatlike.state import snapshot


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class World:
    """This process's place in the learner's DeepSpeed world (rendezvous at ``master_addr:master_port``)."""

    rank: int = 0
    size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 0


def prepare_environment(device: torch.device, world: World) -> None:
    """Set the variables DeepSpeed reads and, for a world of one, make its process group without a port.

    A world of one needs no rendezvous: its process group lives on an in-memory store, so concurrent runs
    on one machine never race for a port. Larger worlds meet at ``world.master_addr:world.master_port``.
    """
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    # One extension build folder per virtual environment: venvs sharing one rebuild each other's ops.
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    os.environ.update(
        RANK=str(world.rank),
        WORLD_SIZE=str(world.size),
        LOCAL_RANK="0",
        MASTER_ADDR=world.master_addr,
        MASTER_PORT=str(world.master_port or free_port()),
    )
    import torch.distributed as dist

    if world.size == 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def build_ds_config(config: LearnerConfig, device: torch.device) -> dict[str, Any]:
    """The DeepSpeed config dict for the learner settings."""
    ds_config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.grad_accum_steps,
        "gradient_clipping": config.max_grad_norm,
        "zero_optimization": {"stage": config.zero_stage},
        "bf16": {"enabled": config.bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if config.offload:
        ds_config["zero_optimization"]["offload_optimizer"] = {"device": "cpu"}
        # ZeRO-Offload refuses client optimizers; its CPU Adam comes from the DS config.
        ds_config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": config.lr, "weight_decay": config.weight_decay},
        }
    if config.zero_stage == 3:
        ds_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    return ds_config


def initialize(
    model: torch.nn.Module,
    config: LearnerConfig,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
    scheduler_factory: Any,
    world: World,
) -> tuple[Any, Any]:
    """``(engine, scheduler)``: the model wrapped in a DeepSpeed engine with its optimizer and LR schedule.

    ``scheduler_factory(optimizer)`` builds the LR schedule once DeepSpeed has made the optimizer (the
    engine steps it at every optimizer step). With ``world.size > 1`` every rank must call this at once.
    """
    prepare_environment(device, world)
    import deepspeed

    if device.type == "cpu" and not config.cpu_shm_allreduce:
        # ``import deepspeed.comm.torch as m`` would bind the torch module that deepspeed.comm re-exports.
        backend_module = importlib.import_module("deepspeed.comm.torch")
        backend_module.build_shm_op = lambda: None  # type: ignore[attr-defined]  # skip the shared-memory all-reduce op's JIT build
    ds_config = build_ds_config(config, device)
    with _quiet_deepspeed_logs():
        engine, _, _, _ = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            model_parameters=None if optimizer is not None else [p for p in model.parameters() if p.requires_grad],
            config=ds_config,
            lr_scheduler=scheduler_factory,
        )
    return engine, engine.lr_scheduler


@contextlib.contextmanager
def _quiet_deepspeed_logs() -> Iterator[None]:
    import logging

    logger = logging.getLogger("DeepSpeed")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def gathered(module: torch.nn.Module, zero_stage: int) -> Iterator[None]:
    """Inside, ``module``'s parameters are whole on every rank (ZeRO-3 partitions gathered, read-only: changes
    are not written back); below stage 3 they already are. Collective under ZeRO-3: every rank enters."""
    if zero_stage != 3:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
        yield


def gathered_state_dict(module: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    """Full (unpartitioned) copies of ``module``'s weights, on the CPU; gathers ZeRO-3 partitions."""
    with gathered(module, zero_stage):
        return {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], zero_stage: int) -> None:
    """Load full weights into ``module`` (every rank calls it; under ZeRO-3 rank 0's copy is partitioned)."""
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0):
            module.load_state_dict(state)
        return
    module.load_state_dict(state)


def engine_state(engine: Any) -> dict[str, Any]:
    """This rank's optimizer (its ZeRO partition) and LR-schedule state, copied."""
    scheduler = engine.lr_scheduler
    return {
        "optimizer": snapshot(engine.optimizer.state_dict()),
        "scheduler": None if scheduler is None else snapshot(scheduler.state_dict()),
    }


def load_engine_state(engine: Any, state: dict[str, Any], zero_stage: int) -> None:
    """Restore :func:`engine_state` (after the weights: ZeRO-1/2 take their fp32 partitions from the state)."""
    if zero_stage == 0:  # the client AdamW itself, or DeepSpeed's bf16 wrapper of it: both take one dict
        engine.optimizer.load_state_dict(snapshot(state["optimizer"]))
    elif zero_stage in (1, 2):
        engine.optimizer.load_state_dict([snapshot(state["optimizer"])], load_from_fp32_weights=True)
    else:
        engine.optimizer.load_state_dict([snapshot(state["optimizer"])])
    if engine.lr_scheduler is not None and state["scheduler"] is not None:
        engine.lr_scheduler.load_state_dict(snapshot(state["scheduler"]))


def state_classes() -> list[Any]:
    """The non-tensor classes that ZeRO optimizer states hold (loss scalers, stage enums, fragment addresses):
    what ``torch.load(weights_only=True)`` must allow to read a full-state checkpoint."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
