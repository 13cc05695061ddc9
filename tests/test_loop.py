"""The loop end to end with the local runner (in-process): files, counts, variants, budget, and stopping
without losing data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import LocalRun, eval_records, make_config, read_metrics, run_local, step_records

from oatlike.errors import NonFiniteLossError
from oatlike.experiment import build_loop, run
from oatlike.models.loading import load_causal_lm


def test_short_run_writes_everything(tmp_path):
    config = make_config(tmp_path, "steps=4", "eval.every=2")
    summary = run(config, tmp_path)
    records = read_metrics(tmp_path)
    assert all("oracle/queries" in r and "step" in r for r in records)
    for record in records:
        prefixes = {key.split("/")[0] for key in record if "/" in key}
        assert prefixes <= {"train", "eval", "actor", "oracle", "misc", "explorer", "regret"}
    steps = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert [r["step"] for r in eval_records(tmp_path)] == [0, 2, 4]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [f"step_{s:06d}.jsonl" for s in (0, 2, 4)]
    generation = json.loads((tmp_path / "eval" / "step_000004.jsonl").read_text().splitlines()[0])
    assert generation.keys() >= {"prompt", "answer", "reference", "utility", "win_probability"}
    assert summary["oracle_queries"] == steps[-1]["oracle/queries"] == summary["pairs_trained"]
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 4
    assert "loss:\n  name: dpo" in (tmp_path / "config.yaml").read_text()
    load_causal_lm(str(tmp_path / "checkpoints" / "final"))  # a standard HF folder


def test_every_sync_moves_the_behaviour_policy_and_offline_never_does(tmp_path):
    online = run_local(tmp_path / "on", "steps=2", "eval.every=0")
    assert online.actor.policy_version == 2
    learner = online.learner.weights()
    actor = online.actor.engine.model.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(learner[k], actor[k]) for k in learner)  # bitwise, fp32
    assert {r["misc/sync_probe_max_gap"] for r in step_records(tmp_path / "on")} == {0.0}
    offline = run_local(tmp_path / "off", "steps=2", "eval.every=0", "sync_every=0")
    assert offline.actor.policy_version == 0
    records = step_records(tmp_path / "off")
    assert {r["actor/weights_version"] for r in records} == {0}
    assert not any("misc/sync_probe_max_gap" in r for r in records)


def eval_generations(done: LocalRun) -> list[dict]:
    path = Path(done.summary["run_dir"]) / "eval" / f"step_{done.summary['steps']:06d}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def lr_values(records: list[dict]) -> list[float]:
    return [r["train/lr"] for r in records]


VARIANTS = {
    "zero3": (["learner.zero_stage=3"], lambda done, records: done.learner.engine.zero_optimization_stage() == 3),
    "zero2-accum4": (
        ["learner.zero_stage=2", "learner.micro_batch_size=8", "learner.grad_accum_steps=4"],
        # 32 pairs a step, 8 per micro-batch, 4 micro-batches an optimizer step: one optimizer step a step
        lambda done, records: (
            done.learner.engine.zero_optimization_stage() == 2
            and [r["train/optimizer_steps"] for r in records] == [1, 2, 3]
        ),
    ),
    "lora": (
        ["model.lora.enabled=true", "model.lora.r=4"],
        lambda done, records: (
            bool(getattr(done.learner.policy, "peft_config", None))
            and done.learner.policy.peft_config["default"].r == 4
        ),
    ),
    "best-worst": (
        ["explore=best_worst", "actor.num_samples=4"],
        # every candidate scored (4 per prompt) plus one comparison per distinct pair
        lambda done, records: all(r["oracle/step_queries"] >= 4 * 32 for r in records),
    ),
    "simpo-buffer": (
        ["algo=simpo", "learner.buffer_size=64", "learner.epochs=2"],
        # the buffer fills to 64 pairs; 2 epochs over it of 32-pair optimizer steps: 2, then 4 more a step
        lambda done, records: (
            done.learner.references.model is None
            and [r["train/buffer_pairs"] for r in records] == [32, 64, 64]
            and [r["train/optimizer_steps"] for r in records] == [2, 6, 10]
        ),
    ),
    "slic-hf-cosine": (
        ["algo=slic_hf", "learner.lr_scheduler=cosine", "learner.warmup_steps=1"],
        lambda done, records: (
            done.learner.loss.name == "slic_hf"
            and lr_values(records) == sorted(lr_values(records), reverse=True)
            and lr_values(records)[0] > lr_values(records)[-1]
        ),
    ),
    "sorting-ipo": (
        ["task=sorting", "algo=ipo", "model.warm_start.steps=20"],
        lambda done, records: (
            done.learner.loss.name == "ipo"
            and all(record["prompt"].startswith("sort ") for record in eval_generations(done))
        ),
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_run_and_take_effect(tmp_path, variant):
    overrides, took_effect = VARIANTS[variant]
    done = run_local(tmp_path, "steps=3", "eval.every=0", *overrides)
    records = step_records(tmp_path)
    assert done.summary["steps"] == 3 and all(r["train/optimizer_steps"] > 0 for r in records)
    assert took_effect(done, records), variant


def test_pretrained_model_from_a_local_folder(tmp_path, warm_policy):
    summary = run(make_config(tmp_path, "model=hf", f"model.pretrain={warm_policy}", "steps=2"), tmp_path)
    assert summary["steps"] == 2


def test_prompts_from_a_local_file(tmp_path):
    rows = [
        {"question": f"{a}+{b}=", "answer": str(a + b + (a % 3 == 0))} for a in range(10, 40) for b in range(10, 20)
    ]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = make_config(
        tmp_path / "run",
        "data=files",
        f"data.path={tmp_path / 'prompts.jsonl'}",
        "data.prompt_column=question",
        "data.reference_column=answer",
        "steps=2",
    )
    summary = run(config, tmp_path / "run")
    assert summary["steps"] == 2
    first = read_metrics(tmp_path / "run")[0]
    assert first["misc/train_prompts"] + first["misc/eval_prompts"] == len(rows)


def test_query_budget_ends_the_run_cleanly(tmp_path):
    summary = run(make_config(tmp_path, "steps=50", "eval.every=0", "oracle.max_queries=70"), tmp_path)
    assert summary["stop_reason"] == "oracle.max_queries reached"
    queries, steps = summary["oracle_queries"], summary["steps"]
    assert queries <= 70 < queries + 32  # never overrun; stopped when one more step (32 pairs) could
    assert 2 <= steps < 50
    assert [r["step"] for r in eval_records(tmp_path)] == [0, steps]  # the final evaluation still ran
    assert (tmp_path / "checkpoints" / "final" / "config.json").exists()


def test_nan_loss_stops_and_keeps_what_was_collected(tmp_path, monkeypatch):
    loop = build_loop(make_config(tmp_path, "steps=10", "eval.every=0"), tmp_path)
    learner = loop.roles.learner.learner  # type: ignore[attr-defined]
    real = learner.loss.per_pair
    calls = {"n": 0}

    def blows_up_at_the_third_step(logps):  # a fake numerical blow-up
        calls["n"] += 1
        return real(logps) * (float("nan") if calls["n"] > 4 else 1.0)

    monkeypatch.setattr(learner.loss, "per_pair", blows_up_at_the_third_step)
    with pytest.raises(NonFiniteLossError, match="loss is nan at learner step 3"):
        loop.run()
    assert [r["step"] for r in read_metrics(tmp_path) if "train/loss" in r] == [1, 2]
    assert len((tmp_path / "failed_batch.jsonl").read_text().splitlines()) == 32
    weights = load_causal_lm(str(tmp_path / "checkpoints" / "last")).state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_evaluation_on_a_task_is_noiseless_whatever_the_training_oracle(tmp_path):
    clean = run(make_config(tmp_path / "clean", "steps=1", "eval.every=0"), tmp_path / "clean")
    noisy = run(
        make_config(tmp_path / "noisy", "steps=1", "eval.every=0", "oracle.label_noise=0.4"), tmp_path / "noisy"
    )
    # the same initial policy, judged alike: noisy annotators in training do not shrink the win rate to 0.5
    assert noisy["initial/eval/win_rate"] == clean["initial/eval/win_rate"] != 0.5
    assert noisy["eval_oracle"].startswith("rule, noiseless")
    judged = run(
        make_config(tmp_path / "judged", "steps=1", "eval.every=0", "eval.oracle=rule", "eval.oracle.label_noise=0.4"),
        tmp_path / "judged",
    )
    assert (
        judged["initial/eval/win_rate"] != clean["initial/eval/win_rate"]
        and judged["eval_oracle"] == "rule (eval.oracle)"
    )
