"""Bad inputs and faults, one table (``tests/faults``): each gives one line naming the thing and how to fix
it, no traceback, the exit status it should, and keeps what was collected."""

from __future__ import annotations

import pytest
from faults import data, files, models, numerics, oracles, ray_start, runs, tracking
from faults.harness import Fault, try_fault

CASES: list[Fault] = [
    *numerics.CASES,
    *files.CASES,
    *runs.CASES,
    *oracles.CASES,
    *tracking.CASES,
    *data.CASES,
    *models.CASES,
    *ray_start.CASES,
]


@pytest.mark.parametrize("fault", [case.param() for case in CASES])
def test_fault_is_one_line_and_keeps_what_was_collected(fault: Fault, tmp_path, monkeypatch, capfd):
    try_fault(fault, tmp_path, monkeypatch, capfd)
