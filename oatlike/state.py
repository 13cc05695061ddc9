"""State snapshots: what ``state_dict()`` returns must not change when the component goes on.

PyTorch's ``Module.state_dict()`` and ``Optimizer.state_dict()`` hand out the live tensors (and
``load_state_dict`` may keep them), so a state taken now and restored later would carry what happened in
between. Every component's ``state_dict()`` returns :func:`snapshot` copies.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def snapshot(value: Any) -> Any:
    """``value`` with every tensor cloned to its own memory (dicts, lists and tuples walked; the rest copied)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(snapshot(item) for item in value)
    return copy.deepcopy(value)
