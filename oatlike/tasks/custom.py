"""``task=custom``: a :class:`~oatlike.tasks.base.Task` subclass from the user's own module.

``task.target`` names it as ``module:Class`` (imported with the current folder on ``sys.path``, as
``python -m`` would) or ``path/to/file.py:Class`` (loaded from that file). The class is built with the
:class:`~oatlike.tasks.config.CustomTaskConfig` (its ``seed``, ``num_eval`` and ``options``). Only the code
the user names is run: it is the user's own, asked for by that key.

The warm start's cache key includes a digest of the module's source, so editing the task builds a new warm
start instead of reusing one trained for the old task.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

from oatlike.errors import ConfigError, first_line
from oatlike.tasks.base import Task
from oatlike.tasks.config import CustomTaskConfig

KEY = "task.target"


def load_custom_task(config: CustomTaskConfig) -> Task:
    """The task ``config.target`` names, built with ``config``; one-line :class:`ConfigError` otherwise."""
    where, _, attribute = config.target.rpartition(":")
    module = _import(where)
    found = getattr(module, attribute, None)
    if found is None:
        public = sorted(
            name for name, value in vars(module).items() if isinstance(value, type) and issubclass(value, Task)
        )
        raise ConfigError(KEY, f"{where} has no {attribute!r} (Task classes there: {public or 'none'})")
    if not (isinstance(found, type) and issubclass(found, Task)):
        raise ConfigError(KEY, f"{config.target} is not a subclass of oatlike.tasks.base.Task; see docs/tasks.md")
    if inspect.isabstract(found):
        missing = ", ".join(sorted(found.__abstractmethods__))
        raise ConfigError(KEY, f"{config.target} does not implement {missing} (the Task interface: docs/tasks.md)")
    task = found(config)
    task.name = getattr(found, "name", None) or attribute
    task.source_digest = _source_digest(module)
    return task


def _import(where: str) -> ModuleType:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ConfigError(KEY, f"no such file {where!r}; give module:Class or path/to/file.py:Class")
        name = f"oatlike_custom_task_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise ConfigError(KEY, f"importing {where} failed: {type(error).__name__}: {first_line(error)}") from None
        return module
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would see it (a console script's sys.path lacks it)
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as error:
        if error.name and where.startswith(error.name):
            raise ConfigError(
                KEY, f"no module {where!r} in the current folder or on sys.path; give module:Class or file.py:Class"
            ) from None
        raise ConfigError(KEY, f"importing {where} failed: {first_line(error)}") from None
    except Exception as error:
        raise ConfigError(KEY, f"importing {where} failed: {type(error).__name__}: {first_line(error)}") from None


def _source_digest(module: ModuleType) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:12]
    except (OSError, TypeError):
        return None
