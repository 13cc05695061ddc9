"""The warm start: built once, cached by recipe, mediocre but competent."""

from __future__ import annotations

import json
import statistics

import torch

from oatlike import warmstart
from oatlike.engines.base import SamplingParams
from oatlike.engines.hf import HFEngine
from oatlike.models.config import ModelConfig, WarmStartConfig
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.config import ArithmeticTaskConfig, SortingTaskConfig
from oatlike.tasks.sorting import SortingTask
from oatlike.warmstart import default_cache_dir, ensure_policy_folder, ensure_tokenizer


def greedy_utility(folder, task) -> float:
    engine = HFEngine(load_causal_lm(str(folder)), load_tokenizer(str(folder)))
    prompts = task.split("eval")
    answers = engine.generate(
        [engine.tokenizer(p.text).input_ids for p in prompts], SamplingParams(greedy=True, max_new_tokens=24)
    )
    return statistics.mean(task.utility(p.text, a[0].text) for p, a in zip(prompts, answers, strict=True))


def test_default_warm_start_is_mediocre_but_competent(warm_policy, tiny_untrained):
    report = json.loads((warm_policy / "warm_start.json").read_text())
    assert report["steps"] == 1000 and report["final_loss"] < 1.0
    task = ArithmeticTask()
    trained = greedy_utility(warm_policy, task)
    untrained = greedy_utility(tiny_untrained, task)
    reference = statistics.mean(task.utility(p.text, p.reference) for p in task.split("eval"))
    assert untrained < 0.2
    assert 0.7 < trained < 0.95  # it learned the demonstrator, mistakes included
    assert abs(trained - reference) < 0.1


def test_cached_by_recipe_and_built_atomically(tmp_path, monkeypatch):
    model = ModelConfig(warm_start=WarmStartConfig(steps=20, batch_size=8))
    first = ensure_policy_folder(model, SortingTaskConfig(), SortingTask(), tmp_path, progress=False)
    assert {"config.json", "model.safetensors", "tokenizer.json", "warm_start.json"} <= {
        p.name for p in first.iterdir()
    }
    built = (first / "model.safetensors").stat().st_mtime_ns

    def no_second_build(*args, **kwargs):
        raise AssertionError("the cached warm start was trained again")

    with monkeypatch.context() as patch:
        patch.setattr(warmstart, "supervised_fine_tune", no_second_build)
        again = ensure_policy_folder(model, SortingTaskConfig(), SortingTask(), tmp_path, progress=False)
    assert again == first and (first / "model.safetensors").stat().st_mtime_ns == built
    changed = ModelConfig(warm_start=WarmStartConfig(steps=21, batch_size=8))
    other = ensure_policy_folder(changed, SortingTaskConfig(), SortingTask(), tmp_path, progress=False)
    assert other != first
    task_changed = ensure_policy_folder(
        model, SortingTaskConfig(max_value=30), SortingTask(SortingTaskConfig(max_value=30)), tmp_path, False
    )
    assert task_changed not in (first, other)
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name]
    assert not leftovers
    assert ensure_tokenizer(tmp_path) == ensure_tokenizer(tmp_path)


def test_warm_start_is_deterministic(tmp_path):
    model = ModelConfig(warm_start=WarmStartConfig(steps=5, batch_size=4))
    a = ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path / "a", progress=False)
    b = ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path / "b", progress=False)
    wa, wb = load_causal_lm(str(a)).state_dict(), load_causal_lm(str(b)).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OATLIKE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("OATLIKE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "oatlike"


def test_a_damaged_cached_build_is_rebuilt(tmp_path, caplog):
    model = ModelConfig(warm_start=WarmStartConfig(steps=5, batch_size=4))
    folder = ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path, progress=False)
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])  # a copy cut short
    again = ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path, progress=False)
    assert again == folder and weights.read_bytes() == whole  # rebuilt, bitwise as before (seeded)
    assert "is damaged (" in caplog.text and "not a whole safetensors file" in caplog.text
    load_causal_lm(str(folder))
    (folder / "config.json").unlink()
    ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path, progress=False)
    assert "config.json is missing" in caplog.text and (folder / "config.json").is_file()
    assert not [p.name for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_each_size_takes_its_recipe_unless_given_and_only_10m_50m_change_their_cache_key():
    from oatlike.help import field_doc
    from oatlike.models.config import WARM_START_RECIPES

    task_config, task = ArithmeticTaskConfig(), ArithmeticTask()

    def key(size, warm):
        return warmstart._digest(warmstart.warm_start_recipe(task_config, size, warm.resolved(size), task))

    before = WarmStartConfig(steps=1000, batch_size=64, lr=1e-3)  # the one recipe every size had before
    assert WarmStartConfig().resolved("1m") == before
    assert key("1m", WarmStartConfig()) == "9cc8803855a0"  # the 1m folder cached before the recipes
    for size in ("10m", "50m"):
        recipe, resolved = WARM_START_RECIPES[size], WarmStartConfig().resolved(size)
        assert (resolved.steps, resolved.batch_size, resolved.lr) == (recipe.steps, recipe.batch_size, recipe.lr)
        assert resolved.steps < 1000 and key(size, WarmStartConfig()) != key(size, before)
    explicit = WarmStartConfig(steps=7).resolved("10m")
    assert (explicit.steps, explicit.batch_size) == (7, WARM_START_RECIPES["10m"].batch_size)
    assert key("10m", WarmStartConfig(steps=1000, batch_size=64, lr=1e-3)) == key("10m", before)
    for name in ("steps", "batch_size", "lr"):  # --help and docs/configuration.md say the table's numbers
        doc = field_doc(WarmStartConfig, name)
        assert all(f"{size}: {getattr(r, name)}" in doc for size, r in WARM_START_RECIPES.items()), doc


def test_a_build_is_announced_once_with_its_estimate(tmp_path, caplog):
    model = ModelConfig(warm_start=WarmStartConfig(steps=2, batch_size=4))
    with caplog.at_level("INFO", logger="oatlike.warmstart"):
        folder = ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "building the 1m warm start on arithmetic: 2 SFT steps of 4 demonstrations, about 1 s on one thread "
        f"of a 2-core CPU; done once, then cached in {folder}"
    ]
    assert f"cached in {folder}" in caplog.records[-1].getMessage()
    caplog.clear()
    ensure_policy_folder(model, ArithmeticTaskConfig(), ArithmeticTask(), tmp_path, progress=False)
    assert not caplog.records  # a cache hit says nothing
    ten = WarmStartConfig().resolved("10m")
    line = warmstart.build_warning("10m", "arithmetic", ten, tmp_path)
    minutes = round(warmstart.estimated_seconds("10m", ten) / 60)
    assert f"{ten.steps} SFT steps of {ten.batch_size} demonstrations, about {minutes} min" in line and minutes >= 2
