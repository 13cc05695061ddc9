"""Hydra's own flags on oatlike's command line (``--cfg job|hydra|all``, ``-p``, ``--resolve``, ``--info``,
``-sc install=bash``, ``--hydra-help``, ``-m``): parsed by Hydra's own argument parser, in any order with the
overrides and in either spelling (``--cfg job``, ``--cfg=job``), and handed to Hydra as it expects them
(:mod:`oatlike.cli`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

SHOWN_COMMANDS = {"cfg": "--cfg", "info": "--info", "shell_completion": "--shell-completion"}
"""Hydra's commands that show something instead of running: Hydra takes one at a time."""


class CommandLineError(ValueError):
    """A flag Hydra's parser refuses, or flags that do not go together (one line, exit status 2)."""


def _refuse(message: str) -> NoReturn:
    """``argparse``'s error hook: one line instead of its usage text and exit."""
    raise CommandLineError(message)


def _hydra_parser() -> argparse.ArgumentParser:
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.prog = "oatlike"
    parser.error = _refuse  # type: ignore[method-assign]
    return parser


def parse_flags(args: list[str]) -> argparse.Namespace:
    """Hydra's flags and the overrides in ``args``, parsed by Hydra's own parser.

    Flags and overrides may come in any order (``steps=3 -m seed=0,1``, ``-sc install=bash``), both
    ``--cfg job`` and ``--cfg=job``. Combinations Hydra would stop on with a traceback are one line here;
    ``-r`` (run, the default) is dropped, and so is ``-m`` with ``--shell-completion``, which runs nothing;
    ``--cfg hydra --resolve`` shows the ``hydra`` package of the whole config (``--cfg all -p hydra``).

    Raises:
        CommandLineError: an unknown flag, a bad choice, two commands at once, ``--resolve`` without ``--cfg``.
    """
    flags = _hydra_parser().parse_intermixed_args(args)
    shown = [flag for name, flag in SHOWN_COMMANDS.items() if getattr(flags, name)]
    if len(shown) > 1:
        raise CommandLineError(f"{' and '.join(shown)} cannot be given together; give one of them")
    if flags.resolve and not (flags.cfg or flags.help):
        raise CommandLineError("--resolve goes with --cfg (or --help): oatlike --cfg job --resolve")
    if flags.cfg == "hydra" and flags.resolve and flags.package is None:
        # Hydra's run folder names oatlike's keys (run_dir, algo_name, task.name), which Hydra's config alone
        # cannot resolve: show the hydra package of the whole config instead
        flags.cfg, flags.package = "all", "hydra"
    flags.run = False
    flags.multirun = flags.multirun and not flags.shell_completion
    return flags


def composes_oatlike_config(flags: argparse.Namespace) -> bool:
    """Whether the overrides are config overrides of oatlike's own config, to be checked before Hydra starts
    (``-sc``'s are completion commands; another config file, folder or rerun is Hydra's to check)."""
    others = (flags.shell_completion, flags.hydra_help, flags.config_path, flags.config_name, flags.config_dir)
    return not any(others) and flags.experimental_rerun is None


def hydra_argv(flags: argparse.Namespace, overrides: list[str] | None = None) -> list[str]:
    """The command line for Hydra: the overrides first, then each flag given (``--flag=value``), so Hydra's
    parser, which takes the overrides in one piece and ``--info``'s value when one follows, reads it alike."""
    argv = list(flags.overrides if overrides is None else overrides)
    for action in _hydra_parser()._actions:
        value = getattr(flags, action.dest, None)
        if not action.option_strings or action.dest in ("help", "version") or value in (None, False):
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        argv.append(flag if value is True else f"{flag}={value}")
    return argv
