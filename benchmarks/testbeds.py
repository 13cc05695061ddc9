"""What each testbed's warm start scores: greedy, sample mean, best-of-K (K = 2, 4, 8) and coverage.

For each built-in testbed (``task=cipher|menu|progression``) this builds (or reads from the cache) the
default warm start, the 1M tiny Llama after SFT on the task's demonstrator, and on the report prompts
measures its greedy answer's utility, the mean utility of its samples (temperature 1, as the actors
sample), the mean best-of-K utility over the first K of ``--samples`` samples per prompt, how often one
sample is a best response (utility 1), and how often two samples are identical (such pairs are skipped).
Each figure comes with its standard error over prompts. docs/tasks.md records the table;
tests/tasks/test_testbeds.py asserts the stated properties with :func:`coverage`.

    python benchmarks/testbeds.py                       # every testbed, 256 report prompts, 8 samples each
    python benchmarks/testbeds.py --tasks menu --prompts 64
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from oatlike.config import compose
from oatlike.engines.base import SamplingParams
from oatlike.engines.hf import HFEngine
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.tasks.base import Task, build_task
from oatlike.warmstart import default_cache_dir, ensure_policy_folder

TESTBEDS = ("cipher", "menu", "progression")
BEST_OF = (2, 4, 8)


@dataclass
class Coverage:
    """Per-prompt measurements of a warm start on a task's report prompts (arrays of one value per prompt)."""

    greedy: np.ndarray
    """Utility of the greedy answer."""
    samples: np.ndarray
    """``[prompts, samples]`` utilities of the sampled answers."""
    identical: np.ndarray
    """Whether the first two samples are the same text."""
    greedy_texts: list[str]
    """The greedy answers themselves (a testbed's trap is a property of them)."""

    def best_of(self, k: int) -> np.ndarray:
        """Per-prompt best utility among the first ``k`` samples."""
        return self.samples[:, :k].max(axis=1)

    def best_rate(self) -> np.ndarray:
        """Per-prompt fraction of samples that are a best response (utility 1)."""
        return (self.samples >= 1.0).mean(axis=1)

    def rows(self) -> dict[str, np.ndarray]:
        """The table's rows: name -> per-prompt values (their mean is the figure)."""
        rows = {"greedy": self.greedy, "sample mean": self.samples.mean(axis=1)}
        rows |= {f"best-of-{k}": self.best_of(k) for k in BEST_OF}
        return rows | {"P(best) per sample": self.best_rate(), "identical pairs": self.identical.astype(float)}


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) / math.sqrt(len(values))


def testbed(name: str, *overrides: str) -> tuple[Task, Path]:
    """The task ``task=name`` and the folder of its default warm start (built on first use, cached)."""
    config = compose(f"task={name}", *overrides)
    task = build_task(config.task)
    assert task is not None
    folder = ensure_policy_folder(config.model, config.task, task, default_cache_dir(), progress=False)
    return task, folder


def coverage(task: Task, folder: Path, num_prompts: int = 256, num_samples: int = 8, seed: int = 0) -> Coverage:
    """Greedy and ``num_samples`` sampled answers (temperature 1) of the policy in ``folder`` to the first
    ``num_prompts`` report prompts of ``task``, scored by its utility."""
    import torch

    torch.manual_seed(seed)
    engine = HFEngine(load_causal_lm(str(folder)), load_tokenizer(str(folder)))
    prompts = [item.text for item in task.split("report")[:num_prompts]]
    prompt_ids = [engine.tokenizer(p).input_ids for p in prompts]
    greedy = engine.generate(prompt_ids, SamplingParams(greedy=True))
    sampled = engine.generate(prompt_ids, SamplingParams(n=num_samples))
    return Coverage(
        greedy=np.array([task.utility(p, g[0].text) for p, g in zip(prompts, greedy, strict=True)]),
        samples=np.array([[task.utility(p, s.text) for s in group] for p, group in zip(prompts, sampled, strict=True)]),
        identical=np.array([group[0].text == group[1].text for group in sampled]),
        greedy_texts=[g[0].text for g in greedy],
    )


LEARNING = {"cipher": 3200, "menu": 3200, "progression": 3200}
"""Each testbed's oracle-query budget in the learning comparison (online DPO and the offline baseline alike)."""


@dataclass
class Comparison:
    """Online DPO against the offline baseline at one query budget: per-prompt greedy utilities."""

    start: np.ndarray
    online: np.ndarray
    offline: np.ndarray
    queries: dict[str, int]

    def margin(self) -> tuple[float, float]:
        """The mean per-prompt gain of online over offline, and three standard errors of it."""
        difference = self.online - self.offline
        return float(difference.mean()), 3.0 * standard_error(difference)


def final_utilities(run_dir: Path, step: int | None = None) -> np.ndarray:
    """Per-prompt utilities of a run's evaluation at ``step`` (default: the last one)."""
    import json

    files = sorted((run_dir / "eval").glob("step_*.jsonl"))
    path = files[-1] if step is None else run_dir / "eval" / f"step_{step:06d}.jsonl"
    return np.array([json.loads(line)["utility"] for line in path.read_text().splitlines()])


def online_vs_offline(name: str, root: Path, queries: int | None = None, seed: int = 0) -> Comparison:
    """Online DPO and the offline baseline (its sampler never takes new weights, ``sync_every=0``) on
    ``task=name``, each stopped at the same oracle-query budget, evaluated greedily on the report prompts."""
    from oatlike.experiment import run

    budget = [f"task={name}", f"seed={seed}", f"oracle.max_queries={queries or LEARNING[name]}", "steps=1000"]
    summaries, folders = {}, {}
    for variant, extra in {"online": [], "offline": ["sync_every=0"]}.items():
        folders[variant] = root / f"{name}-{variant}-{seed}"
        overrides = [*budget, *extra, "eval.every=0", f"run_dir={folders[variant]}", "tracking.progress=false"]
        summaries[variant] = run(compose(*overrides), folders[variant])
    return Comparison(
        start=final_utilities(folders["online"], 0),
        online=final_utilities(folders["online"]),
        offline=final_utilities(folders["offline"]),
        queries={variant: int(summary["oracle_queries"]) for variant, summary in summaries.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TESTBEDS), choices=TESTBEDS)
    parser.add_argument("--prompts", type=int, default=256, help="report prompts measured")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt (>= the largest K)")
    parser.add_argument("--learning", action="store_true", help="also run online DPO against the offline baseline")
    args = parser.parse_args()
    if args.learning:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="oatlike-testbeds-"))
        print("| testbed | queries (online, offline) | start | offline | online | online − offline (3 s.e.) | time |")
        print("|---|---|---|---|---|---|---|")
        for name in args.tasks:
            start = time.perf_counter()
            result = online_vs_offline(name, root)
            gain, bar = result.margin()
            print(
                f"| `{name}` | {result.queries['online']}, {result.queries['offline']} | {result.start.mean():.3f} "
                f"| {result.offline.mean():.3f} | {result.online.mean():.3f} | {gain:+.3f} ({bar:.3f}) "
                f"| {time.perf_counter() - start:.0f} s |"
            )
        return
    tables = {}
    for name in args.tasks:
        start = time.perf_counter()
        task, folder = testbed(name)
        built = time.perf_counter() - start
        tables[name] = coverage(task, folder, args.prompts, args.samples).rows()
        measured = time.perf_counter() - start - built
        print(f"{name}: warm start {folder.name} ready in {built:.0f} s, measured in {measured:.0f} s")
    print()
    print("| warm start | " + " | ".join(f"`{name}`" for name in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for row in next(iter(tables.values())):
        cells = [f"{values[row].mean():.3f} ± {standard_error(values[row]):.3f}" for values in tables.values()]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
