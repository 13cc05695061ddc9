"""The command line: ``oatlike key=value group=option ...`` (also ``python -m oatlike``).

Hydra composes the config from ``oatlike/conf``; ``-m`` runs sweeps (Hydra multirun). Before Hydra starts,
a preflight composes and validates the config with the given overrides (each value of a sweep too), so a
mistyped key, an unknown option or an invalid value fails at once with one line naming the key::

    oatlike: error: unknown config key 'loss.bta' (did you mean 'loss.beta'?)

Errors during the run (a missing data file, a NaN loss) are reported the same way, exit status 1.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from oatlike.config import compose_dict, expand_shorthands, load_config, register_configs
from oatlike.errors import ConfigError, OatlikeError, RunStopped, first_line, unwritable
from oatlike.help import config_keys, group_options, help_text, markdown_help

register_configs()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``oatlike`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [SERVE_ORACLE]:
        serve_oracle_main(args[1:])
        return
    args = expand_shorthands(args)
    if "-h" in args or "--help" in args:
        overrides = [a for a in args if a not in ("-h", "--help") and not a.startswith("-")]
        print(help_text(overrides))
        return
    if "--markdown-help" in args:
        print(markdown_help(), end="")
        return
    error = preflight(args)
    if error:
        print(f"oatlike: error: {error}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [sys.argv[0], *args]
    _quiet_libraries()
    _hydra_main()


def _quiet_libraries() -> None:
    """No per-file progress bars from transformers (the run has its own bar)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _run_job(cfg: DictConfig) -> Any:
    from hydra.core.hydra_config import HydraConfig

    from oatlike import resume
    from oatlike.experiment import run

    config = load_config(cfg)
    hydra = HydraConfig.get()
    run_dir = Path(config.run_dir or hydra.runtime.output_dir)
    try:
        found = resume.locate(config, run_dir) if config.resume is not None else None
        if found is not None:  # continue that run, with the checkpoint's config and the resumable overrides
            run_dir, folder = found
            config = resume.resumed_config(folder, list(hydra.overrides.task))
            return run(config, run_dir, folder)
        return run(config, run_dir)
    except RunStopped as stopped:
        print(f"oatlike: {stopped}", file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None
    except OatlikeError as error:
        print(f"oatlike: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"oatlike: interrupted; what was collected is in {run_dir}", file=sys.stderr)
        raise SystemExit(130) from None


def _hydra_main() -> None:
    import hydra

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
    """Compose and validate the config for ``args``; the one-line error, or ``None`` when all is well."""
    from hydra.errors import HydraException

    args = expand_shorthands(args)
    overrides = [a for a in args if not a.startswith("-") and not a.startswith(("hydra.", "hydra/", "+hydra"))]
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
            key, folder = "run_dir", "."  # the default runs/... folder is made in the working directory
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
        return f"{full_key}: has no default and must be given: add {full_key}=... (`oatlike --help` shows what it is)"
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
