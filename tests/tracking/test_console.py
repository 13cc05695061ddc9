"""The console of a run: parseable lines when the output is not a terminal (a batch job's log file), the bar
on a real terminal (a pseudo-terminal 80 columns wide) keeping utility, loss and accuracy."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios
import time

from oatlike.tracking.config import TrackingConfig
from oatlike.tracking.tracker import Tracker

LINE = re.compile(
    r"oatlike: step=(\d+)/(\d+) queries=(\d+) loss=([\d.]+) accuracy=([\d.]+) utility=([\d.]+) win_rate=([\d.]+) "
    r"elapsed=\d+:\d\d:\d\d eta=(\d+:\d\d:\d\d)"
)


def simulate(tracker: Tracker, steps: int, pause_seconds: float = 0.0) -> None:
    """What the loop gives a tracker: an evaluation at step 0, then a record and an advance per step."""
    tracker.log(0, {"eval/utility": 0.8346, "eval/win_rate": 0.4895, "oracle/queries": 0})
    for step in range(1, steps + 1):
        time.sleep(pause_seconds)
        tracker.log(step, {"oracle/queries": 16 * step, "train/loss": 0.7 - 0.01 * step, "train/reward_accuracy": 0.5})
        tracker.advance()
    tracker.finish({"stop_reason": "completed", "steps": steps, "oracle_queries": 16 * steps})


def test_a_redirected_run_prints_one_line_every_n_steps_and_no_carriage_return(tmp_path):
    stream = io.StringIO()  # not a terminal, as a file a job's output is redirected to
    config = TrackingConfig(log_every_steps=3, log_every_seconds=0)
    simulate(Tracker(tmp_path, config, {}, total_steps=7, stream=stream), steps=7)
    output = stream.getvalue()
    assert "\r" not in output
    lines = output.splitlines()
    assert lines[0] == f"oatlike: start version=0.1.0 step=0/7 run_dir={tmp_path}"
    assert lines[-1] == "oatlike: end stop_reason=completed step=7/7 queries=112 elapsed=0:00:00"
    progress = [LINE.fullmatch(line) for line in lines[1:-1]]
    assert all(progress), lines
    assert [(m[1], m[2], m[3], m[4], m[6], m[7]) for m in progress if m] == [
        ("3", "7", "48", "0.6700", "0.8346", "0.4895"),
        ("6", "7", "96", "0.6400", "0.8346", "0.4895"),
    ]


def test_lines_also_come_every_n_seconds_and_only_start_and_end_without_progress(tmp_path):
    stream = io.StringIO()
    config = TrackingConfig(log_every_steps=0, log_every_seconds=0.05)
    tracker = Tracker(tmp_path, config, {}, total_steps=4, stream=stream)
    tracker.log(0, {})
    for step, pause in enumerate((0.0, 0.08, 0.0, 0.08), start=1):  # due after the slow steps only
        time.sleep(pause)
        tracker.log(step, {"train/loss": 0.5})
        tracker.advance()
    tracker.close()
    assert re.findall(r"oatlike: step=(\d)/4 ", stream.getvalue()) == ["2", "4"]

    quiet = io.StringIO()
    config = TrackingConfig(progress=False, log_every_steps=1)
    (tmp_path / "quiet").mkdir()
    simulate(Tracker(tmp_path / "quiet", config, {}, total_steps=3, stream=quiet), steps=3)
    lines = quiet.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("oatlike: start ") and lines[1].startswith("oatlike: end ")


def test_on_an_80_column_terminal_the_bar_keeps_utility_loss_and_accuracy(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.set_blocking(leader, False)
    with open(follower, "w", closefd=True) as terminal:
        tracker = Tracker(tmp_path, TrackingConfig(log_every_steps=1), {}, total_steps=12000, stream=terminal)
        tracker.log(0, {"eval/utility": 0.8346, "eval/win_rate": 0.4895})
        for step in range(1, 4):
            tracker.log(step, {"oracle/queries": 123456 + step, "train/loss": 12.3456, "train/reward_accuracy": 0.5})
            tracker.advance()
        tracker.console.bar.refresh()
        drawn = b""
        while True:
            try:
                drawn += os.read(leader, 65536)
            except BlockingIOError:
                break
        tracker.close()
    os.close(leader)
    redraws = [r for r in drawn.decode().replace("\n", "\r").split("\r") if r.strip()]
    last = redraws[-1].rstrip()
    assert len(last) <= 80 and "oatlike: step=" not in drawn.decode()  # a bar, not lines, on a terminal
    assert last.startswith("3/12000 util=0.835 loss=12.346 acc=0.500 |"), redraws
    assert re.search(r"\|\S* +\| \d\d:\d\d<\d\d:\d\d$", last) and len(last) >= 78  # the bar and times fill the rest
