"""What every component's config module needs: value checks and the plug-in registries.

Each package owns the typed configs of its components in a light module of its own
(``oatlike/<package>/config.py``: dataclasses, a docstring line per field, value checks in
``__post_init__``), so ``oatlike --help`` never imports torch. Where users choose a component by name
(``loss=dpo``, ``explore=sea``, ``oracle=judge``, ...) the package keeps one :class:`Registry` that maps
the name to its schema and to its implementation, named as ``"module:attribute"`` and imported only when
built. :mod:`oatlike.config` places every registered schema in Hydra's config store as the option of
its group, so a shipped option is its schema: defaults are written once, in the dataclass.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from oatlike.errors import ConfigError

S = TypeVar("S", bound=type)


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, message)


def check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    check(value in choices, key, f"must be one of {', '.join(choices)}; got {value!r}")


def check_probability(config: object, *keys: str) -> None:
    """Each of ``keys`` of ``config`` is a probability in [0, 1]."""
    for key in keys:
        value = getattr(config, key)
        check(0.0 <= value <= 1.0, key, f"must be a probability in [0, 1], got {value}")


def check_at_least(config: object, minimum: float, *keys: str) -> None:
    """Each of ``keys`` of ``config`` is ``>= minimum``."""
    for key in keys:
        value = getattr(config, key)
        check(value >= minimum, key, f"must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class Option:
    """One named choice of a plug-in kind: its config schema and where its implementation lives."""

    name: str
    schema: type
    target: str
    """``"package.module:attribute"``: a class or factory taking the schema's instance first."""

    def implementation(self) -> Any:
        """Import and return the implementation (a class or a factory function)."""
        module, _, attribute = self.target.partition(":")
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):  # "Class.factory" names a classmethod
            found = getattr(found, part)
        return found


class Registry:
    """The options of one plug-in kind (``explore``, ``loss``, ...), by the name users choose them with."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._options: dict[str, Option] = {}

    def register(self, name: str, target: str) -> Callable[[S], S]:
        """Class decorator: ``@EXPLORERS.register("sea", "oatlike.exploration.sea:SEA")`` on a schema."""

        def add(schema: S) -> S:
            if name in self._options:
                raise ValueError(f"{self.kind} option {name!r} is registered twice")
            self._options[name] = Option(name, schema, target)
            return schema

        return add

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def names(self) -> list[str]:
        return sorted(self._options)

    def get(self, name: str, key: str | None = None) -> Option:
        """The option ``name``; a :class:`ConfigError` naming ``key`` (default ``<kind>.name``) if unknown."""
        if name not in self._options:
            raise ConfigError(key or f"{self.kind}.name", f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._options[name]

    def build(self, config: Any, *args: Any, **kwargs: Any) -> Any:
        """The implementation of ``config.name`` called with ``config`` and the given arguments."""
        return self.get(config.name).implementation()(config, *args, **kwargs)
