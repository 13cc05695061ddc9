"""The command line: ``oatlike key=value group=option ...`` (also ``python -m oatlike``).

Hydra composes the config from ``oatlike/conf``; ``-m`` runs sweeps (Hydra multirun). Before Hydra starts,
a preflight composes and validates the config with the given overrides (each value of a sweep too), so a
mistyped key, an unknown option or an invalid value fails at once with one line naming the key::

    oatlike: error: unknown config key 'loss.bta' (did you mean 'loss.beta'?)

Errors during the run (a missing data file, a NaN loss) are reported the same way, exit status 1, and
logged to the run folder's ``oatlike.log`` with the run's start line (version, command, folder).

Hydra's own flags (``--cfg job|hydra|all``, ``-p``, ``--resolve``, ``--info``, ``-sc install=bash``,
``--hydra-help``, ``-m``) are parsed by Hydra's own argument parser (:mod:`oatlike.hydra_flags`), in any order
with the overrides, and handed to Hydra as it expects them (overrides first). ``-m`` with ``--cfg`` or
``--info``, which Hydra refuses, shows each job of the sweep in turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from oatlike.config import compose_dict, expand_shorthands, load_config, register_configs, runs_root
from oatlike.errors import ConfigError, OatlikeError, RunStopped, first_line, unwritable
from oatlike.help import config_keys, group_options, help_text, markdown_help
from oatlike.hydra_flags import CommandLineError, composes_oatlike_config, hydra_argv, parse_flags
from oatlike.tracking.logs import FILE_ONLY, ensure_run_log

register_configs()
log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oatlike`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [SERVE_ORACLE]:
        serve_oracle_main(args[1:])
        return
    if args[:1] == [COMPARE]:
        from oatlike.compare import compare_main

        compare_main(args[1:])
        return
    if "--markdown-help" in args:
        print(markdown_help(), end="")
        return
    if "--version" in args:
        from oatlike import __version__

        print(f"oatlike {__version__}")  # then Hydra's parser prints Hydra's version and exits
    try:
        flags = parse_flags(expand_shorthands(args))
    except CommandLineError as error:
        print(f"oatlike: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    problem = preflight(flags.overrides) if flags.help or composes_oatlike_config(flags) else None
    if problem and not (flags.help and MUST_BE_GIVEN in problem):  # --help shows what must be given
        print(f"oatlike: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if flags.help:  # oatlike's own help, with the values after the overrides (a sweep's first values)
        print(help_text(_override_variants(flags.overrides)[0]))
        return
    if flags.multirun and (flags.cfg or flags.info):
        _show_each_job(flags)
        return
    _hydra_main(hydra_argv(flags))


# ---------------------------------------------------------------------------------------- Hydra's flags

MUST_BE_GIVEN = "has no default and must be given"


def _show_each_job(flags: argparse.Namespace) -> None:
    """``-m`` with ``--cfg`` or ``--info``: Hydra refuses the pair; a sweep is a list of jobs (expanded by
    Hydra's basic sweeper), so each job is shown in turn under a ``# job N: overrides`` line, composed in
    multirun mode (``--cfg hydra`` shows the sweep's folders)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(flags.overrides)
    shown = argparse.Namespace(**{**vars(flags), "multirun": False})
    root = logging.getLogger()
    for number, job in enumerate(BasicSweeper.split_arguments(parsed, None)[0]):
        print(f"# job {number}: {shlex.join(job)}", flush=True)
        handlers, level = list(root.handlers), root.level
        try:
            _hydra_main(hydra_argv(shown, [*job, "hydra.mode=MULTIRUN"]))
        finally:  # --info adds a handler to the root logger each time: each job's would print once more
            root.handlers[:], root.level = handlers, level


def _quiet_libraries() -> None:
    """No per-file progress bars from transformers (the run has its own bar)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _run_job(cfg: DictConfig) -> Any:
    from hydra.core.hydra_config import HydraConfig

    from oatlike import resume
    from oatlike.experiment import run

    _quiet_libraries()
    config = load_config(cfg)
    hydra = HydraConfig.get()
    run_dir = Path(config.run_dir or hydra.runtime.output_dir)
    _group_sweep(config, hydra)
    try:
        found = resume.locate(config, run_dir, runs_root()) if config.resume is not None else None
        run_dir = run_dir if found is None else found[0]
        ensure_run_log(run_dir)  # (Hydra's log is in its own folder, which resume=auto may not continue)
        _log_start(config, run_dir, list(hydra.overrides.task))
        if found is not None:  # continue that run, with the checkpoint's config and the resumable overrides
            config = resume.resumed_config(found[1], list(hydra.overrides.task))
            return run(config, run_dir, found[1])
        return run(config, run_dir)
    except RunStopped as stopped:
        _report(f"oatlike: {stopped}", logging.WARNING)
        raise SystemExit(stopped.exit_code) from None
    except OatlikeError as error:
        _report(f"oatlike: error: {error}", logging.ERROR)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        _report(f"oatlike: interrupted; what was collected is in {run_dir}", logging.WARNING)
        raise SystemExit(130) from None


def _group_sweep(config: Any, hydra: Any) -> None:
    """A job of a sweep (``-m``): its W&B run joins the sweep's group (the sweep folder's name, unless
    ``tracking.wandb.group`` is set) and is tagged with the job's overrides (``algo=sea``, ``seed=1``)."""
    from hydra.types import RunMode

    if hydra.mode != RunMode.MULTIRUN:
        return
    wandb = config.tracking.wandb
    wandb.group = wandb.group or Path(hydra.sweep.dir).name
    kept = [o for o in hydra.overrides.task if not o.lstrip("+~").startswith(("run_dir=", "tracking.", "hydra"))]
    wandb.tags = [*wandb.tags, *(tag for tag in kept if tag not in wandb.tags)]


def _log_start(config: Any, run_dir: Path, overrides: list[str]) -> None:
    """The first line of the run's ``oatlike.log``: the version, this job's command line (secrets redacted:
    a value pasted under a secret-like key, a secret environment variable's value) and the run folder."""
    from oatlike import __version__
    from oatlike.tracking.wandb_logger import find_secrets, redact_text

    command = redact_text(shlex.join(["oatlike", *overrides]), find_secrets(dataclasses.asdict(config)))
    log.info("oatlike %s started: %s; run folder %s", __version__, command, run_dir.resolve())


def _report(line: str, level: int) -> None:
    """``line`` on stderr as it is, and in ``oatlike.log`` (only there: the console has it already)."""
    print(line, file=sys.stderr)
    log.log(level, "%s", line, extra=FILE_ONLY)


def _hydra_main(argv: list[str]) -> None:
    """Run Hydra's own main (composition, multirun, ``--cfg`` ...) on ``argv``, read from ``sys.argv``."""
    import hydra

    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path="conf", config_name="config", version_base=None)(_run_job)()


# ---------------------------------------------------------------------------------------------- preflight


def _override_variants(overrides: list[str]) -> list[list[str]]:
    """The override lists to validate: every value of each sweep once (the others at their first value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            try:
                values = list(override.sweep_string_iterator())
            except Exception:  # interval sweeps (for optimisers) have no finite values
                values = []
            choices.append([f"{key}={v}" for v in values] or [])
        else:
            choices.append([override.input_line or ""])
    variants = [[c[0] for c in choices if c]]
    for index, options in enumerate(choices):
        for option in options[1:]:
            variant = [c[0] for c in choices if c]
            position = sum(1 for c in choices[:index] if c)
            variant[position] = option
            variants.append(variant)
    return variants


def preflight(args: list[str]) -> str | None:
    """Compose and validate the config for ``args`` (overrides, and flags, which are left to Hydra); the
    one-line error, or ``None`` when all is well."""
    from hydra.errors import HydraException

    try:
        args = parse_flags(expand_shorthands(args)).overrides
    except CommandLineError as error:
        return str(error)
    overrides = [a for a in args if not a.startswith(("hydra.", "hydra/", "+hydra"))]
    try:
        variants = _override_variants(overrides)
    except HydraException as error:
        return f"cannot parse the overrides: {first_line(error)}"
    configs = []
    for variant in variants:
        try:
            configs.append(load_config(compose_dict(*variant)))
        except (HydraException, OmegaConfBaseException, ConfigError, ValueError) as error:
            return describe_error(error, variant)
    for config in configs:
        key, folder = ("run_dir", config.run_dir) if config.run_dir else ("resume", config.resume)
        if folder is None or folder == "auto":
            key, folder = "run_dir", str(runs_root())  # where the default runs/... folder is made
        problem = unwritable(Path(folder))
        if problem:
            return f"{key}: cannot write the run folder {folder!r}: {problem}; choose another {key}"
    return None


def describe_error(error: BaseException, overrides: list[str]) -> str:
    """One line for a composition or validation error, naming the key and, when possible, a fix."""
    if isinstance(error, ConfigError):
        return str(error)
    text = str(error)
    missing_option = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing_option:
        group, option = missing_option.groups()
        available = sorted(group_options(group))
        hint = difflib.get_close_matches(option, available, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown {group} '{option}'{suggestion}; choose one of: {', '.join(available)}"
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    text = f"{text}\n{cause}" if cause is not None and cause is not error else text
    full_key = getattr(cause, "full_key", None) or _key_from_text(text)
    if full_key and re.search(r"Key '[^']+' not in|not in struct|Could not append", text):
        return f"unknown config key '{full_key}'{_suggest_key(full_key, overrides)}"
    if isinstance(cause, MissingMandatoryValue) and full_key:
        return f"{full_key}: {MUST_BE_GIVEN}: add {full_key}=... (`oatlike --help` shows what it is)"
    if isinstance(cause, OmegaConfBaseException) and full_key:
        message = getattr(cause, "msg", None) or first_line(cause)
        return f"{full_key}: {first_line(Exception(message))}"
    return first_line(error)


def _key_from_text(text: str) -> str | None:
    match = re.search(r"full_key: ([\w.\[\]]+)", text) or re.search(r"Could not override '([^']+)'", text)
    return match.group(1) if match else None


def _suggest_key(full_key: str, overrides: list[str]) -> str:
    parent, _, leaf = full_key.rpartition(".")
    try:
        bad = full_key.lstrip("+~")
        cfg = compose_dict(*[o for o in overrides if not o.lstrip("+~").startswith(bad + "=")])
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = list(node.keys()) if isinstance(node, DictConfig) else []
    except Exception:
        return ""
    match = difflib.get_close_matches(leaf, [str(k) for k in keys], n=1)
    return f" (did you mean '{parent + '.' if parent else ''}{match[0]}'?)" if match else ""


COMPARE = "compare"
"""``oatlike compare RUN_DIR...`` (:mod:`oatlike.compare`): finished runs side by side, with seed intervals."""

# ------------------------------------------------------------------------------------------ serve-oracle

SERVE_ORACLE = "serve-oracle"
SERVE_EXAMPLES = """\
examples:
  oatlike serve-oracle oracle=reward_model oracle.model=/path/to/rm serve.port=8000 serve.replicas=2
  oatlike serve-oracle oracle=rule task=sorting serve.host=0.0.0.0
  oatlike serve-oracle oracle=pairrm serve.ray_address=auto serve.gpus_per_replica=1
then train against it:
  oatlike oracle=remote oracle.url=http://127.0.0.1:8000
"""


def serve_help_text(overrides: list[str]) -> str:
    """``oatlike serve-oracle --help``: usage and the keys that matter to a served oracle."""
    lines = [
        f"usage: oatlike {SERVE_ORACLE} [oracle=option] [task=option] [key=value ...] [--help]",
        "",
        "Serve the configured oracle over HTTP with Ray Serve (dynamic batching, replicas, local Ray or a",
        "cluster) until Ctrl-C. The protocol is documented in oatlike/oracles/serve.py.",
        "",
        SERVE_EXAMPLES,
        f"oracle options: {', '.join(group_options('oracle'))}",
        "",
        "keys (values after the overrides given):",
    ]
    for key, value, doc in config_keys(compose_dict(*overrides)):
        if key.startswith(("oracle.", "serve.", "task.", "device", "cache_dir")):
            lines.append(f"  {key} = {value}")
            lines.extend([f"      {doc}"] if doc else [])
    return "\n".join(lines)


def serve_oracle_main(args: list[str]) -> None:
    """``oatlike serve-oracle key=value ...``: serve ``oracle`` until Ctrl-C (errors: one line, as a run's)."""
    if "-h" in args or "--help" in args:
        print(serve_help_text([a for a in args if not a.startswith("-")]))
        return
    flags = [a for a in args if a.startswith("-")]
    error = f"{SERVE_ORACLE} takes key=value overrides only, not {flags[0]}" if flags else preflight(args)
    if error:
        print(f"oatlike: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    config = load_config(compose_dict(*args))
    _quiet_libraries()
    from oatlike.oracles.serve import serve_until_stopped

    try:
        serve_until_stopped(config, announce=lambda line: print(line, flush=True))
    except OatlikeError as error:
        print(f"oatlike: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
