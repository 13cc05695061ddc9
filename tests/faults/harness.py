"""How one bad input or fault is tried: the real command line, in this process, into a fresh folder.

A :class:`Fault` says how to make the fault (``prepare``: files to write, something to break, extra
overrides), the one ``oatlike: error:`` line it must give (a regular expression searched in it), the exit
status, and what the run must have kept (files in its run folder). :func:`try_fault` runs it and checks
what every case shares: exactly one error line, no traceback anywhere in the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

Prepare = Callable[[Path, pytest.MonkeyPatch], Sequence[str] | None]
"""``prepare(folder, monkeypatch)`` makes the fault in ``folder`` (the run folder is ``folder / "run"``) and
returns more overrides, if any."""


@dataclass(frozen=True)
class Fault:
    """One bad input or fault, the one line it must give and what must be kept."""

    name: str
    args: tuple[str, ...] = ()
    message: str = ""
    """A regular expression searched in the error line (after ``oatlike: error: ``)."""
    prepare: Prepare | None = None
    status: int = 1
    kept: tuple[str, ...] = ()
    """Paths in the run folder that must exist afterwards (what was collected)."""
    stop_reason: str | None = None
    """``summary.json``'s ``stop_reason``, for a run that started."""
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())
    then: Callable[[Outcome], None] | None = None
    """More checks of the outcome (e.g. that no process of the run is left)."""

    def param(self) -> object:
        return pytest.param(self, id=self.name, marks=self.marks)


@dataclass
class Outcome:
    status: int
    output: str
    error_lines: list[str]
    run_dir: Path


def run_cli(
    folder: Path, args: Sequence[str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> Outcome:
    """``oatlike ARGS run_dir=FOLDER/run`` in this process; its exit status and everything it printed."""
    from oatlike import cli

    _point_log_handlers_at(sys.stderr)
    run_dir = folder / "run"
    argv = ["tracking.progress=false", f"run_dir={run_dir}", *args]
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["oatlike", *argv])
    status = 0
    try:
        cli.main(argv)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    captured = capfd.readouterr()
    output = captured.out + captured.err
    lines = [line for line in output.splitlines() if line.startswith("oatlike: error:")]
    return Outcome(status, output, lines, run_dir)


def _point_log_handlers_at(stream: object) -> None:
    """Console handlers made during an earlier case hold that case's (closed) captured stream: logging's own
    and Ray's (whose handlers close nothing; other libraries' subclasses may close their stream)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler or type(handler).__qualname__ == "PlainRayHandler":
                handler.stream = stream  # (not setStream: it flushes the closed one)


def try_fault(fault: Fault, folder: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> Outcome:
    """Make ``fault``, run the command line, and check the one line, the exit status and what was kept."""
    extra = list(fault.prepare(folder, monkeypatch) or []) if fault.prepare else []
    outcome = run_cli(folder, [*fault.args, *extra], monkeypatch, capfd)
    tail = outcome.output[-3000:]
    assert "Traceback" not in outcome.output, tail
    assert len(outcome.error_lines) == 1, tail
    assert re.search(fault.message, outcome.error_lines[0].removeprefix("oatlike: error: ")), outcome.error_lines[0]
    assert outcome.status == fault.status, tail
    for path in fault.kept:
        assert (outcome.run_dir / path).exists(), f"{path} was not kept: {sorted(outcome.run_dir.rglob('*'))[:30]}"
    if fault.stop_reason is not None:
        import json

        summary = json.loads((outcome.run_dir / "summary.json").read_text())
        assert re.search(fault.stop_reason, summary["stop_reason"]), summary
    if fault.then is not None:
        fault.then(outcome)
    return outcome
