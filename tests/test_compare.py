"""``oatlike compare`` on synthetic run folders (a real resolved ``config.yaml`` and a ``metrics.jsonl`` of known
values): runs grouped by their config differences, every number and interval of the table against numpy and
scipy on the same numbers, differences paired by seed, the plot, and bad input as one line."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import bootstrap

from oatlike.cli import main
from oatlike.compare import compare
from oatlike.config import compose
from oatlike.help import help_text

X = [0.0, 100.0, 200.0, 300.0]


@cache
def resolved(*overrides: str) -> str:
    """The JSON of the resolved config of ``overrides`` (as ``config.yaml`` holds it)."""
    return json.dumps(OmegaConf.to_container(OmegaConf.structured(compose(*overrides)), resolve=True))


def write_run(folder: Path, ys: list[float], seed: int, *overrides: str, xs: list[float] = X) -> Path:
    """A run folder with the config of ``overrides`` and ``seed`` and one evaluation per ``(xs, ys)`` point
    between training records (which have no eval/utility)."""
    folder.mkdir(parents=True)
    config = json.loads(resolved(*overrides))
    config["seed"], config["run_dir"] = seed, str(folder)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(config))
    records = []
    for step, (x, y) in enumerate(zip(xs, ys, strict=True)):
        records.append({"step": step, "oracle/queries": x, "train/loss": 0.5})
        records.append({"step": step, "oracle/queries": x, "eval/utility": y, "eval/win_rate": y / 2})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The interval the table promises: 95% percentile bootstrap of the mean, 9999 resamples, seed 0."""
    result = bootstrap((values,), np.mean, method="percentile", n_resamples=9999, rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@pytest.fixture(scope="module")
def two_algorithms(tmp_path_factory) -> tuple[list[Path], dict[str, dict[int, list[float]]]]:
    """DPO and SEA, five seeds each. A seed moves both algorithms' curves by the same large amount (what
    seeds share: prompts, labels), SEA is 0.02 better plus a little noise. SEA's folders come in an order
    that does not match DPO's seeds, so only pairing by seed lines them up."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(7)
    curves: dict[str, dict[int, list[float]]] = {"dpo": {}, "sea": {}}
    folders = []
    for seed in range(5):
        shape = 0.60 + 0.06 * seed + np.array([0.0, 0.10, 0.18, 0.22])
        curves["dpo"][seed] = [float(v) for v in shape]
        curves["sea"][seed] = [float(v) for v in shape + 0.02 + rng.normal(0, 0.002, 4) * [0, 1, 1, 1]]
    for seed in range(5):
        folders.append(write_run(root / f"dpo-{seed}", curves["dpo"][seed], seed, "algo=dpo"))
    for seed in (3, 0, 4, 1, 2):
        folders.append(
            write_run(root / f"sea-{seed}", curves["sea"][seed], seed, "algo=sea", "tracking.progress=false")
        )
    return folders, curves


def test_the_table_is_the_direct_computation_on_the_same_numbers(two_algorithms):
    folders, curves = two_algorithms
    result = compare(folders, target=0.8)
    assert [g.name for g in result.groups] == ["algo=dpo", "algo=sea"]  # tracking.* is bookkeeping
    assert [g.seeds for g in result.groups] == [[0, 1, 2, 3, 4]] * 2
    for estimates, name in zip(result.estimates, ("dpo", "sea"), strict=True):
        ys = np.array([curves[name][seed] for seed in range(5)])
        finals = ys[:, -1]
        aucs = np.array([np.trapezoid(y, X) / 300 for y in ys])
        to_target = np.array([np.interp(0.8, y, X) for y in ys])  # every curve increases: interp is exact
        for got, values in zip(estimates, (finals, aucs, to_target), strict=True):
            assert got.mean == pytest.approx(values.mean())
            assert (got.low, got.high) == pytest.approx(percentile_interval(values))
            assert got.low < got.mean < got.high
    text = result.text()
    final = result.estimates[1][0]
    assert f"algo=sea  5      {final.mean:.4f} [{final.low:.4f}, {final.high:.4f}]" in text
    assert "oracle/queries to 0.8" in text and "paired by seed" in text


def test_differences_are_paired_by_seed_and_narrower_than_unpaired(two_algorithms):
    folders, curves = two_algorithms
    result = compare(folders)
    paired = result.differences[0][0]  # Δ final eval/utility, sea − dpo
    dpo = np.array([curves["dpo"][s][-1] for s in range(5)])
    sea = np.array([curves["sea"][s][-1] for s in range(5)])
    assert paired.mean == pytest.approx((sea - dpo).mean())
    assert (paired.low, paired.high) == pytest.approx(percentile_interval(sea - dpo))
    unpaired = bootstrap(
        (sea, dpo),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        method="percentile",
        n_resamples=9999,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert paired.high - paired.low < (unpaired.high - unpaired.low) / 10  # the seed effect cancels
    assert 0 < paired.low < 0.02 < paired.high  # and the difference is resolved; unpaired it is not:
    assert unpaired.low < 0 < unpaired.high
    by_position = sea[[3, 0, 4, 1, 2]] - dpo  # the folders' order: pairing by position would see noise
    assert not percentile_interval(by_position)[0] > 0


def test_auc_over_the_range_every_run_covers_and_a_target_not_always_reached(tmp_path):
    short = write_run(tmp_path / "a0", [0.5, 0.7, 0.9], 0, "algo=dpo", xs=[0, 100, 250])
    longer = write_run(tmp_path / "a1", [0.5, 0.6, 0.7, 0.8], 1, "algo=dpo")
    result = compare([short, longer], target=0.85)
    assert len(result.groups) == 1
    final, auc, to_target = result.estimates[0]
    # over queries 0..250: a0's mean is (0.6·100 + 0.8·150) / 250; a1 stops at 250 (0.75 there by interpolation)
    assert auc.mean == pytest.approx(((0.6 * 100 + 0.8 * 150) / 250 + (0.55 * 100 + 0.65 * 100 + 0.725 * 50) / 250) / 2)
    assert final.mean == pytest.approx(0.85)
    assert to_target.mean is None and to_target.text(0) == "n/a (never in 1 of 2 seeds)"
    assert "oracle/queries from 0 to 250 (the range every run covers) ÷ 250" in result.text()


def test_group_names_say_what_differs_beyond_the_algorithm_preset(tmp_path):
    folders = [
        write_run(tmp_path / "dpo", [0.5] * 4, 0, "algo=dpo"),
        write_run(tmp_path / "sea", [0.5] * 4, 0, "algo=sea"),
        write_run(tmp_path / "sea-4", [0.5] * 4, 0, "algo=sea", "actor.num_samples=4"),
        write_run(tmp_path / "sea-4-seed1", [0.6] * 4, 1, "algo=sea", "actor.num_samples=4"),
    ]
    result = compare(folders)
    assert [g.name for g in result.groups] == ["algo=dpo", "algo=sea", "algo=sea actor.num_samples=4"]
    assert [len(g.runs) for g in result.groups] == [1, 1, 2]
    single = result.estimates[0][0]
    assert single.mean == 0.5 and single.text(4) == "0.5000 [n/a: 1 seed]"  # no interval from one seed
    assert result.differences[1][0].mean == pytest.approx(0.0)  # seed 0 is the only pair
    assert compare(folders[:1]).groups[0].name == "algo=dpo"  # a single group is named by its algorithm
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")  # a sweep's folder stands for its runs, as sweep/*
    assert [len(g.runs) for g in compare([tmp_path]).groups] == [len(g.runs) for g in result.groups]
    by_name = {g.name: g.seeds for g in compare(list(tmp_path.iterdir())).groups}
    assert by_name == {"algo=dpo": [0], "algo=sea": [0], "algo=sea actor.num_samples=4": [0, 1]}


def test_the_command_prints_the_table_and_plots_every_group(two_algorithms, tmp_path, capsys):
    folders, _ = two_algorithms
    main(["compare", *map(str, folders), "--target", "0.8", "--out", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("eval/utility against oracle/queries; mean over seeds")
    assert "difference to the baseline algo=dpo" in out and f"plot: {tmp_path / 'plots' / 'compare.png'}" in out
    image = tmp_path / "plots" / "compare.png"
    assert image.stat().st_size > 20_000
    colours = Image.open(image).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # two bands, runs, mean lines, text: not a blank canvas


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-a-run", "is not a run folder (no config.yaml)"),
        ("--metric=eval/nothing", "--metric eval/nothing: no run records it; they record eval/utility, eval/win_rate"),
        ("one-without", "has no eval/utility against oracle/queries"),
    ],
)
def test_bad_input_is_one_line(two_algorithms, tmp_path, capsys, case, expected):
    folders, _ = two_algorithms
    args = [str(folders[0])]
    if case == "not-a-run":
        args.append(str(tmp_path))
    elif case == "one-without":
        other = write_run(tmp_path / "other", [0.5] * 4, 0, "algo=dpo")
        records = [json.loads(line) for line in (other / "metrics.jsonl").read_text().splitlines()]
        (other / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records if "eval/utility" not in r))
        args.append(str(other))
    else:
        args.append(case)
    with pytest.raises(SystemExit) as stopped:
        main(["compare", *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_oatlike_help_points_to_compare_and_compare_has_its_own(capsys):
    assert "oatlike compare RUN_DIR RUN_DIR ..." in help_text([])
    with pytest.raises(SystemExit) as stopped:
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0 and out.startswith("usage: oatlike compare [-h]")
    assert "--target TARGET" in out and "paired by seed" in out
