"""Hydra's own flags on oatlike's command line, in process (``cli.main``): each prints what it prints in any
Hydra app, in either spelling and any order with the overrides; the pre-check still stops bad overrides in one
line, and flags that cannot go together are one line too."""

from __future__ import annotations

import logging
import re

import pytest
import yaml

from oatlike import cli


@pytest.fixture(autouse=True)
def _argv_and_logging(monkeypatch):
    """The console script's name (Hydra reads ``sys.argv``, and ``cli.main`` hands it the command there); the
    root logger as it was (Hydra's ``--info`` adds a handler on this test's captured stdout, a process's
    last act in real use)."""
    monkeypatch.setattr("sys.argv", ["oatlike"])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``oatlike args...`` in this process: exit status, stdout, stderr."""
    status = 0
    try:
        cli.main(list(args))
    except SystemExit as stop:
        status = int(stop.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("spelling", [["--cfg", "job"], ["--cfg=job"], ["-c", "job"], ["steps=7", "-c", "job"]])
def test_cfg_job_prints_the_composed_config(capsys, spelling):
    status, out, err = run_cli(capsys, *spelling, "algo=simpo", "steps=7")
    assert status == 0, err
    config = yaml.safe_load(out)
    assert config["algo_name"] == "simpo" and config["loss"]["name"] == "simpo" and config["steps"] == 7
    assert config["learner"]["zero_stage"] == 0 and "hydra" not in config


def test_cfg_hydra_and_all_print_hydras_config_resolved_on_request(capsys):
    status, out, _ = run_cli(capsys, "--cfg", "hydra", "run_dir=somewhere")
    assert status == 0 and "${oatlike_run_dir:" in yaml.safe_load(out)["hydra"]["run"]["dir"]
    status, out, err = run_cli(capsys, "--cfg", "hydra", "--resolve", "run_dir=somewhere")  # (oatlike's keys in it)
    assert status == 0 and out.startswith("# @package hydra"), err
    assert yaml.safe_load(out)["run"]["dir"] == "somewhere"
    status, out, _ = run_cli(capsys, "--cfg", "all", "--resolve", "algo=ipo", "task=sorting")
    config = yaml.safe_load(out)
    assert status == 0 and {"hydra", "algo_name", "learner"} <= set(config)
    assert config["hydra"]["run"]["dir"].endswith("-ipo-sorting")  # runs/<date>/<time>-ipo-sorting, resolved


def test_package_prints_one_part_of_the_config(capsys):
    status, out, _ = run_cli(capsys, "-p", "learner", "--cfg", "job", "learner.lr=0.003")
    assert status == 0 and out.startswith("# @package learner")
    assert yaml.safe_load(out)["lr"] == 0.003 and "algo_name" not in out
    assert run_cli(capsys, "--cfg", "job", "--package", "loss")[1].startswith("# @package loss")


@pytest.mark.parametrize(
    ("flag", "heading"), [(["--info", "plugins"], "Installed Hydra Plugins"), (["--info"], "Config search path")]
)
def test_info_lists_hydras_plugins_and_search_path(capsys, flag, heading):
    status, out, err = run_cli(capsys, *flag)
    assert status == 0, err
    assert heading in out
    if "plugins" in flag:
        assert "BasicSweeper" in out and "BasicLauncher" in out and "BashCompletion" in out


def test_shell_completion_prints_the_install_script(capsys):
    status, out, err = run_cli(capsys, "-sc", "install=bash")
    assert status == 0, err
    assert "hydra_bash_completion()" in out and "complete -o nospace -o default -F hydra_bash_completion oatlike" in out
    assert run_cli(capsys, "--shell-completion", "install=bash")[1] == out


def test_hydra_help_and_oatlikes_help(capsys):
    status, out, _ = run_cli(capsys, "--hydra-help")
    assert status == 0 and "== Flags ==" in out and "--cfg,-c : Show config instead of running [job|hydra|all]" in out
    status, out, _ = run_cli(capsys, "-m", "--help", "seed=0,1", "steps=9")  # oatlike's own, values after overrides
    assert status == 0 and out.startswith("usage: oatlike") and "  steps = 9" in out


def test_multirun_with_cfg_shows_each_job_of_the_sweep(capsys):
    status, out, err = run_cli(capsys, "-m", "seed=0,1", "algo=dpo,ipo", "--cfg=job", "steps=3")
    assert status == 0, err
    documents = out.split("# job ")[1:]
    assert [d.splitlines()[0] for d in documents] == [
        "0: seed=0 algo=dpo steps=3",
        "1: seed=0 algo=ipo steps=3",
        "2: seed=1 algo=dpo steps=3",
        "3: seed=1 algo=ipo steps=3",
    ]
    configs = [yaml.safe_load(d.split("\n", 1)[1]) for d in documents]
    assert [(c["seed"], c["loss"]["name"], c["steps"]) for c in configs] == [
        (0, "dpo", 3),
        (0, "ipo", 3),
        (1, "dpo", 3),
        (1, "ipo", 3),
    ]
    status, out, _ = run_cli(capsys, "-m", "seed=0,1", "--cfg", "hydra")  # the sweep's own Hydra config
    hydra_configs = [yaml.safe_load(d.split("\n", 1)[1])["hydra"] for d in out.split("# job ")[1:]]
    assert [h["mode"] for h in hydra_configs] == ["MULTIRUN", "MULTIRUN"]
    status, out, _ = run_cli(capsys, "-m", "seed=0,1", "--info", "plugins")
    assert status == 0 and out.count("Installed Hydra Plugins") == 2


def test_flags_go_to_hydra_after_the_overrides_whatever_their_order():
    flags = cli.parse_flags(["steps=3", "-m", "seed=0,1", "--info", "-p", "learner"])
    assert flags.overrides == ["steps=3", "seed=0,1"] and flags.multirun and flags.info == "all"
    # overrides first: Hydra's parser takes them in one piece and --info's value is not an override
    assert cli.hydra_argv(flags) == ["steps=3", "seed=0,1", "--package=learner", "--multirun", "--info=all"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cfg", "job", "loss.bta=1"], "unknown config key 'loss.bta' (did you mean 'loss.beta'?)"),
        (
            ["-m", "--cfg", "job", "algo=dpo,dpoo"],
            "unknown algo 'dpoo' (did you mean 'dpo'?); choose one of: apl, bpo, cdpo, copo, dpo, ipo, rdpo, sea, "
            "selm, simpo, slic, slic_hf, xpo",
        ),
        (["--cfg", "jobs"], "argument --cfg/-c: invalid choice: 'jobs' (choose from 'job', 'hydra', 'all')"),
        (["--cfg", "job", "--info"], "--cfg and --info cannot be given together; give one of them"),
        (["--resolve", "steps=3"], "--resolve goes with --cfg (or --help): oatlike --cfg job --resolve"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_and_overrides_are_one_line(capsys, args, message):
    status, out, err = run_cli(capsys, *args)
    assert status == 2 and out == ""
    assert err == f"oatlike: error: {message}\n"


def test_run_folders_are_named_by_their_overrides(capsys):
    cli.main(["--cfg", "hydra", "--resolve", "algo=ipo", "seed=3", "data.path=/a/b.jsonl", "tracking.progress=false"])
    (run_dir,) = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("  dir: runs/2")]
    # the algorithm and task as before, then the other overrides (a path's / made _; the console's left out)
    assert re.fullmatch(r"runs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-ipo-arithmetic-data\.path=_a_b\.jsonl,seed=3", run_dir)


def test_long_overrides_are_cut_with_a_digest_so_folders_never_collide():
    from oatlike.config import folder_overrides

    assert folder_overrides("algo=sea,seed=1,task=sorting", "-", "algo,task") == "-seed=1"
    assert folder_overrides("", "-", "algo,task") == "" == folder_overrides("algo=sea", "-", "algo")
    first, second = (folder_overrides(f"loss.beta=0.{n}," + "x" * 100) for n in (1, 2))
    assert len(first) == len(second) == 81 and first.startswith("-loss.beta=0.1,xxx") and first != second
