"""Learning tests for the online explorers: every ``algo=`` preset raises the true utility.

As in tests/test_learning.py, the margin is three standard errors of the mean per-prompt utility gain over
step 0 (256 held-out prompts, greedy answers); no-op training (``learner.lr=0``) gives the same greedy
answers, a gain of exactly 0 (tests/test_learning.py checks it), so beating the bar is beating no-op
training. Seed 0 throughout. Run lengths come from benchmarks/sample_efficiency.py over seeds 0-2, where
at these lengths every seed's gain was at least 1.6 times its bar (docs/benchmarks.md): each algorithm
gets the shortest length at which that held.
"""

from __future__ import annotations

import pytest
from helpers import eval_utilities, make_config, three_standard_errors

from oatlike.experiment import run

pytestmark = pytest.mark.slow

STEPS = {"bpo": 75, "apl": 125, "sea": 150, "selm": 200, "xpo": 200, "copo": 200}


@pytest.mark.parametrize("algo", sorted(STEPS))
def test_explorer_improves_the_true_utility(tmp_path, algo):
    summary = run(make_config(tmp_path, f"algo={algo}", "seed=0", "eval.every=0", f"steps={STEPS[algo]}"), tmp_path)
    start, end = eval_utilities(tmp_path, 0), eval_utilities(tmp_path)
    gain, bar = float((end - start).mean()), three_standard_errors(end - start)
    assert gain > bar, (algo, gain, bar)
    assert summary["final/eval/win_rate"] > summary["initial/eval/win_rate"]
