"""What reaches TensorBoard: every number of ``metrics.jsonl`` under its own name, at the training step
(run ``steps``) and at the oracle queries (run ``queries``), read back with TensorBoard's own reader; the
generations as text; a missing package is one line naming the extra."""

from __future__ import annotations

import math
import sys

import pytest
from helpers import read_metrics, run_local
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from oatlike.errors import ConfigError
from oatlike.tracking.tensorboard_logger import TensorBoardLogger


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard run in ``folder``: its (x, value) points, in order."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def expected(records: list[dict], axis: str) -> dict[str, list[tuple[int, float]]]:
    """The points each metric of ``records`` should have on ``axis`` (``step`` or ``oracle/queries``)."""
    points: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for name, value in record.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if name != "step" and number and math.isfinite(value):
                points.setdefault(name, []).append((int(record[axis]), value))
    return points


def test_tensorboard_has_the_metrics_of_metrics_jsonl_on_both_axes(tmp_path):
    run_local(tmp_path, "steps=3", "eval.every=2", "tracking.tensorboard=true")
    records = read_metrics(tmp_path)
    assert any("train/loss" in r for r in records) and any("eval/utility" in r for r in records)
    for run, axis in (("steps", "step"), ("queries", "oracle/queries")):
        written, wanted = scalars(tmp_path / "tensorboard" / run), expected(records, axis)
        assert set(written) == set(wanted)  # the same names, none missing, none extra
        for name, points in wanted.items():
            assert [x for x, _ in written[name]] == [x for x, _ in points], (run, name)
            assert [v for _, v in written[name]] == pytest.approx([v for _, v in points], rel=1e-6), (run, name)
    queries = [x for x, _ in scalars(tmp_path / "tensorboard" / "queries")["train/loss"]]
    assert queries == sorted(queries) and queries[-1] > 3  # the x-axis counts queries, not steps
    events = EventAccumulator(str(tmp_path / "tensorboard" / "steps"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"eval/generations/text_summary", "summary/text_summary"} <= set(events.Tags()["tensors"])


def test_a_missing_tensorboard_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it fails
    with pytest.raises(ConfigError, match=r"tracking\.tensorboard: .*pip install 'oatlike\[tensorboard\]'"):
        TensorBoardLogger(tmp_path)
