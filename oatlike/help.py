"""``oatlike --help`` and ``docs/configuration.md``, generated from the typed configs wherever they live.

Every config field carries a docstring line (the string right after it in its dataclass); the help reads
them from the source of the module that defines each schema, and lists each group's options with the
first line of its schema's (or YAML file's) description.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import sys
from functools import cache

from omegaconf import DictConfig, ListConfig, OmegaConf

from oatlike.config import CONF_DIR, REGISTRIES, compose_dict

GROUPS = ("algo", "task", "data", "model", "loss", "explore", "oracle", "engine", "runner")
"""The config groups, in the order the help lists them."""

EXAMPLES = """\
examples:
  oatlike                                     the default experiment: online DPO, arithmetic task, tiny model
  oatlike algo=simpo task=sorting steps=200   online SimPO on the sorting task
  oatlike sync_every=0                        the offline baseline (the sampler never takes new weights)
  oatlike model.size=10m learner.zero_stage=2 a larger tiny model, ZeRO-2
  oatlike -m algo=dpo,ipo,simpo seed=0,1,2    a sweep (Hydra multirun), runs under runs/multirun/
  oatlike oracle=pairrm eval.oracle=rule      PairRM labels the pairs; the task's utility judges evaluation
  oatlike serve-oracle oracle=pairrm          serve an oracle over HTTP (oatlike serve-oracle --help)
  oatlike compare RUN_DIR RUN_DIR ...         compare finished runs: table with seed intervals, compare.png
                                              (oatlike compare --help)
"""


@cache
def group_options(group: str) -> tuple[str, ...]:
    """The options of ``group``: registered schemas, or the YAML files of ``oatlike/conf/<group>``."""
    if group in REGISTRIES:
        return tuple(REGISTRIES[group].names())
    folder = CONF_DIR / group
    return tuple(sorted(p.stem for p in folder.glob("*.yaml"))) if folder.is_dir() else ()


def option_summary(group: str, option: str) -> str:
    """The first line of the option's description: its schema's docstring, or its YAML file's first comment."""
    if group in REGISTRIES:
        doc = inspect.getdoc(REGISTRIES[group].get(option).schema) or ""
        return doc.split("\n\n")[0].replace("\n", " ").replace("``", "`")
    lines = (CONF_DIR / group / f"{option}.yaml").read_text().splitlines()
    comments = list(itertools.takewhile(lambda line: line.startswith("#"), lines))
    return " ".join(line.lstrip("# ").strip() for line in comments if not line.startswith("# @package"))


@cache
def _module_field_docs(module_name: str) -> dict[tuple[str, str], str]:
    """``(class name, field) -> docstring`` parsed from the attribute docstrings of one module."""
    tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    docs: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement, following in itertools.pairwise(node.body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[(node.name, statement.target.id)] = " ".join(following.value.value.split()).replace("``", "`")
    return docs


def field_doc(schema: type | None, key: str) -> str:
    """The docstring of field ``key`` of ``schema`` (or of the nearest base class that documents it)."""
    for cls in getattr(schema, "__mro__", ()):
        if cls.__module__ in sys.modules:
            doc = _module_field_docs(cls.__module__).get((cls.__name__, key))
            if doc:
                return doc
    return ""


def config_keys(cfg: DictConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key, value, doc)`` for every leaf of ``cfg``, depth first."""
    rows = []
    for key in cfg:
        path = f"{prefix}{key!s}"
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and len(child):  # null and {} are leaves
            rows.extend(config_keys(child, path + "."))
        else:
            if OmegaConf.is_missing(cfg, key):
                shown = "??? (must be given)"
            else:
                value = OmegaConf.to_container(child) if isinstance(child, ListConfig) else cfg[key]
                shown = "null" if value is None else str(value)
            rows.append((path, shown, field_doc(OmegaConf.get_type(cfg), str(key))))
    return rows


def help_text(overrides: list[str]) -> str:
    """``oatlike --help``: usage, examples, config groups and every key with its value and meaning."""
    cfg = compose_dict(*overrides)
    lines = [
        "usage: oatlike [group=option ...] [key=value ...] [-m] [--cfg job] [--help]",
        "       oatlike serve-oracle [key=value ...]       oatlike compare RUN_DIR... [--metric M] [--target T]",
        "",
        "Online alignment of language models from preference feedback (python -m oatlike works too).",
        "",
        EXAMPLES,
        "config groups (group=option):",
    ]
    lines += [f"  {group:<8} {', '.join(group_options(group))}" for group in GROUPS]
    lines += ["", "keys (values after the overrides given; set any with key=value):"]
    for key, value, doc in config_keys(cfg):
        lines.append(f"  {key} = {value}")
        if doc:
            lines.append(f"      {doc}")
    lines += ["", "Hydra's own options (multirun, --cfg, shell completion): oatlike --hydra-help"]
    return "\n".join(lines)


def markdown_help() -> str:
    """``docs/configuration.md``: the groups, their options and every key of the default config, as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `oatlike --markdown-help` from the typed configs (each package's `config.py`);",
        "a test keeps this file in sync. Set any key on the command line: `oatlike key=value`.",
        "",
        "## Config groups",
        "",
        "| group | option | what it is |",
        "|---|---|---|",
    ]
    for group in GROUPS:
        lines += [f"| `{group}` | `{option}` | {option_summary(group, option)} |" for option in group_options(group)]
    lines += ["", "## Keys (default experiment)", "", "| key | default | meaning |", "|---|---|---|"]
    for key, value, doc in config_keys(compose_dict()):
        lines.append(f"| `{key}` | `{value}` | {doc} |")
    lines += [
        "",
        "Options of other groups add their own keys (for example `task=sorting` adds `task.max_length`);",
        "`oatlike <group>=<option> --help` lists them.",
    ]
    lines += _option_keys_markdown("explore", "`algo=` presets choose one")
    lines += _option_keys_markdown("oracle", "`eval.oracle=<option>` takes the same keys as `eval.oracle.<key>`")
    return "\n".join(lines) + "\n"


def _option_keys_markdown(group: str, note: str) -> list[str]:
    """A section per option of ``group`` (but the default) with the keys it adds or sets differently."""
    default = {key: value for key, value, _ in config_keys(compose_dict())}
    lines = ["", f"## `{group}=` options", "", f"Keys that each option adds or sets differently; {note}."]
    for option in group_options(group):
        rows = [
            (key, value, doc)
            for key, value, doc in config_keys(compose_dict(f"{group}={option}"))
            if key.startswith(f"{group}.") and key != f"{group}.name" and default.get(key) != value
        ]
        if key_rows := [f"| `{key}` | `{value}` | {doc} |" for key, value, doc in rows]:
            lines += ["", f"### `{group}={option}`", "", "| key | default | meaning |", "|---|---|---|", *key_rows]
    return lines
