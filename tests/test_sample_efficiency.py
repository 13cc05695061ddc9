"""The instruments of sample efficiency in a run: evaluation on a grid of oracle queries (``eval.every_queries``,
kept across a resume), ``utility_auc`` and ``queries_to_target`` in ``summary.json``, and ``curves.png``."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from pathlib import Path

import pytest
from helpers import eval_records, make_config, step_records
from PIL import Image

from oatlike import plots
from oatlike.config import compose
from oatlike.errors import ConfigError
from oatlike.eval.curves import mean_over_range, x_to_reach
from oatlike.experiment import run
from oatlike.resume import resumed_config
from oatlike.tracking.config import TrackingConfig
from oatlike.tracking.tracker import Tracker

GRID = 50
TARGET = 0.84
RUN = ["steps=6", "eval.every=0", f"eval.every_queries={GRID}", f"eval.target_utility={TARGET}"]
RUN += ["learner.checkpoint_every=3"]


def test_curve_instruments_against_hand_computed_values():
    queries, utilities = [0, 40, 100, 200], [0.5, 0.7, 0.8, 0.8]
    # trapezoids: 40·0.6 + 60·0.75 + 100·0.8 = 24 + 45 + 80 = 149 over a range of 200
    assert mean_over_range(queries, utilities) == pytest.approx(149 / 200)
    # from 20 (0.6 there) to 150 (0.8): 20·0.65 + 60·0.75 + 50·0.8 = 13 + 45 + 40 = 98 over 130
    assert mean_over_range(queries, utilities, 20, 150) == pytest.approx(98 / 130)
    assert mean_over_range([0], [0.5]) is None and mean_over_range(queries, utilities, 0, 300) is None
    assert x_to_reach(queries, utilities, 0.75) == pytest.approx(70)  # halfway from (40, 0.7) to (100, 0.8)
    assert x_to_reach(queries, [0.5, 0.9, 0.7, 0.95], 0.8) == pytest.approx(30)  # the first crossing counts
    assert x_to_reach(queries, utilities, 0.4) == 0 and x_to_reach(queries, utilities, 0.9) is None


def test_both_grids_or_a_target_without_utility_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^eval\.every_queries: .* add eval\.every=0 to evaluate on the query grid"):
        compose("eval.every_queries=100")  # eval.every=20 by default
    assert compose("eval.every_queries=100", "eval.every=0").eval.every_queries == 100
    with pytest.raises(ConfigError, match=r"^eval\.target_utility: eval/utility is the built-in task's utility"):
        compose("task=none", "data=files", "data.path=x.jsonl", "oracle=pairrm", "eval.target_utility=0.9")


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("grid") / "run"
    run(make_config(run_dir, *RUN), run_dir)
    return run_dir


def expected_evaluations(run_dir: Path) -> list[int]:
    """Step 0, each step whose queries reached a new multiple of the grid, and the last step."""
    steps = step_records(run_dir)
    before = [0] + [r["oracle/queries"] for r in steps[:-1]]
    crossed = [r["step"] for r, b in zip(steps, before, strict=True) if r["oracle/queries"] // GRID > b // GRID]
    return sorted({0, *crossed, steps[-1]["step"]})


def test_evaluations_follow_the_query_grid(grid_run):
    evaluated = [r["step"] for r in eval_records(grid_run)]
    assert evaluated == expected_evaluations(grid_run)
    assert 2 < len(evaluated) < 7  # some steps crossed a multiple of the grid, some did not


def test_summary_has_the_utility_auc_and_the_interpolated_queries_to_target(grid_run):
    summary = json.loads((grid_run / "summary.json").read_text())
    points = [(r["oracle/queries"], r["eval/utility"]) for r in eval_records(grid_run)]
    area = sum((q1 - q0) * (u0 + u1) / 2 for (q0, u0), (q1, u1) in itertools.pairwise(points))
    assert summary["utility_auc"] == pytest.approx(area / (points[-1][0] - points[0][0]))
    first = next(i for i, (_, u) in enumerate(points) if u >= TARGET)
    assert first > 0  # the target lies between two evaluations: interpolated, not the first evaluation's queries
    (q0, u0), (q1, u1) = points[first - 1], points[first]
    assert summary["queries_to_target"] == pytest.approx(q0 + (TARGET - u0) / (u1 - u0) * (q1 - q0))
    assert summary["target_utility"] == TARGET


def test_a_run_plots_its_curves(grid_run):
    image = Image.open(grid_run / "curves.png").convert("RGB")
    assert image.width > 2 * image.height  # three panels: utility and win rate, eval/regret, regret/cumulative
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100 and (grid_run / "curves.png").stat().st_size > 20_000


def test_a_resumed_run_keeps_the_query_grid(grid_run, tmp_path):
    """Resumed from its step-3 checkpoint, the run evaluates at the same later steps as the run that went on."""
    resumed = tmp_path / "resumed"
    shutil.copytree(grid_run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "state" / "step_000006")
    checkpoint = resumed / "checkpoints" / "state" / "step_000003"
    run(resumed_config(checkpoint, ["tracking.progress=false"]), resumed, checkpoint)
    whole = [(r["step"], r["oracle/queries"], r["eval/utility"]) for r in eval_records(grid_run)]
    again = [(r["step"], r["oracle/queries"], r["eval/utility"]) for r in eval_records(resumed)]
    assert again == whole and [s for s, _, _ in whole if s > 3] != [4, 5, 6]
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["utility_auc"] == json.loads((grid_run / "summary.json").read_text())["utility_auc"]


def test_missing_metrics_leave_panels_out_and_a_failed_plot_keeps_the_run(tmp_path, monkeypatch, caplog):
    records = [{"step": s, "oracle/queries": 10 * s, "regret/cumulative": 1.5 * s} for s in range(1, 5)]
    only_regret = plots.plot_run_curves(records, tmp_path / "regret.png")  # no task metrics: one panel
    assert only_regret is not None and Image.open(only_regret).width < 1.5 * Image.open(only_regret).height
    assert plots.plot_run_curves([{"step": 0, "oracle/queries": 0}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(plots, "plot_run_curves", broken)
    tracker = Tracker(tmp_path, TrackingConfig(progress=False), {}, total_steps=1)
    tracker.log(1, {"oracle/queries": 10, "eval/utility": 0.5})
    with caplog.at_level(logging.WARNING):
        tracker.finish({"steps": 1})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"steps": 1}
    assert "could not plot" in caplog.text and "RuntimeError: no fonts" in caplog.text
