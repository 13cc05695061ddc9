"""Every shipped config composes; bad keys and values fail early with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from oatlike.cli import describe_error, preflight
from oatlike.config import CONF_DIR, REGISTRIES, Config, compose, compose_dict
from oatlike.help import GROUPS, config_keys, group_options, help_text, markdown_help

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [(group, option) for group in GROUPS for option in group_options(group)]
# options that need a value the default experiment cannot supply on its own
NEEDS = {
    ("model", "hf"): ["model.pretrain=some/model"],
    ("data", "files"): ["data.path=prompts.jsonl"],
    ("task", "none"): ["data=files", "data.path=p.jsonl", "model.warm_start.enabled=false", "oracle=rule"],
    ("oracle", "reward_model"): ["oracle.model=some/reward-model"],
    ("oracle", "judge"): ["oracle.model=some-judge"],
    ("oracle", "remote"): ["oracle.url=http://127.0.0.1:8000"],
    ("task", "custom"): [f"task.target={ROOT / 'tests/tasks/example/reverse_task.py'}:ReverseTask"],
    ("explore", "apl"): ["actor.num_samples=4"],  # choosing a pair needs more than two candidates
    ("explore", "sea"): ["actor.num_samples=4"],
    ("explore", "bpo"): ["model.lora.enabled=true"],  # the LoRA ensemble
}


def composed(overrides: list[str]) -> Config:
    return compose(*overrides)


@pytest.mark.parametrize(("group", "option"), SHIPPED, ids=[f"{g}={o}" for g, o in SHIPPED])
def test_every_shipped_config_composes(group, option):
    overrides = [f"{group}={option}", *NEEDS.get((group, option), [])]
    if (group, option) == ("task", "none"):
        # task=none cannot be judged by the task-utility oracle: the error must say so
        with pytest.raises(Exception, match="oracle=rule scores responses with a built-in task"):
            composed(overrides)
        return
    config = composed(overrides)
    assert isinstance(config, Config)
    if group == "algo":
        assert config.algo_name == option


def test_algo_presets_set_the_loss_and_can_be_overridden():
    assert composed(["algo=simpo"]).loss.name == "simpo"
    assert composed(["algo=rdpo"]).loss.label_smoothing == 0.1
    config = composed(["algo=simpo", "loss=ipo", "loss.beta=0.5"])
    assert (config.loss.name, config.loss.beta, config.algo_name) == ("ipo", 0.5, "simpo")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss.beta=-1"], "loss.beta: must be > 0, got -1.0"),
        (["loss.beta=0"], "loss.beta: must be > 0"),
        (["actor.num_samples=1"], "actor.num_samples: must be >= 2"),
        (["algo=nope"], "unknown algo 'nope'; choose one of: apl, bpo, cdpo, copo, dpo, ipo, rdpo, sea, selm, simpo"),
        (["algo=simp"], "unknown algo 'simp' (did you mean 'simpo'?)"),
        (["loss.bta=0.3"], "unknown config key 'loss.bta' (did you mean 'loss.beta'?)"),
        (["learner.lrr=1"], "unknown config key 'learner.lrr' (did you mean 'learner.lr'?)"),
        (["+surprise=1"], "surprise: unknown config key"),
        (["loss.beta=abc"], "loss.beta: Value 'abc' of type 'str' could not be converted to Float"),
        (["learner.zero_stage=4"], "learner.zero_stage: must be 0, 1, 2 or 3"),
        (["learner.offload=true"], "learner.offload: needs learner.zero_stage >= 1"),
        (["learner.micro_batch_size=5"], "actor.prompts_per_step: must be a multiple of the train batch"),
        (["learner.buffer_size=48"], "learner.buffer_size: the buffer (48 pairs) must be a multiple"),
        (["oracle.label_noise=0.7"], "oracle.label_noise: must be in [0, 0.5]"),
        (["algo=cdpo", "loss.label_smoothing=0.5"], "loss.label_smoothing: must be in [0, 0.5)"),
        (["model=hf"], "model.pretrain: model=hf needs model.pretrain="),
        (["data=files"], "data.path: data.source=dataset needs data.path"),
        (["sync_every=-1"], "sync_every: must be >= 0 (0: never sync)"),
        (["device=tpu"], "device: must be one of auto, cpu, cuda"),
        (["task.num_digits=9"], "task.num_digits: must be in 1..4"),
        (["-m", "loss.beta=0.1,-3"], "loss.beta: must be > 0, got -3.0"),
        (["algo=selm", "loss=simpo"], "loss: explore=selm puts its term on s_θ(y) − s_ref(y), so it needs a loss"),
        (["algo=bpo", "loss=slic_hf"], "loss: explore=bpo uses the behaviour model as reference, so it needs a loss"),
        (["algo=sea", "actor.num_samples=2"], "actor.num_samples: explore=sea with selection=baits chooses among"),
        (["algo=apl", "actor.num_samples=2"], "actor.num_samples: explore=apl picks the pair of largest"),
        (["algo=xpo", "actor.num_samples=4"], "actor.num_samples: explore=xpo pairs one policy sample with one"),
        (["algo=bpo", "model.lora.enabled=false"], "model.lora.enabled: explore.ensemble_size=5 trains an ensemble"),
        (["algo=bpo", "learner.zero_stage=3"], "learner.zero_stage: the LoRA ensemble gives each adapter its own"),
        (["algo=copo", "explore.coin_flips=often"], "explore.coin_flips: must be one of fixed, redraw; got 'often'"),
        (["algo=sea", "explore.max_try=50"], "explore.max_try: must be in 2..explore.ensemble_size (20) or null"),
        (["algo=sea", "explore.selection=ucb"], "explore.selection: must be one of eets, baits, uncertainty, passive"),
    ],
)
def test_bad_input_fails_with_one_line_naming_the_key(overrides, message):
    error = preflight(overrides)
    assert error is not None and message in error
    assert "\n" not in error


def test_good_overrides_and_sweeps_pass_preflight():
    assert preflight(["algo=simpo", "task=sorting", "steps=3"]) is None
    assert preflight(["-m", "algo=dpo,ipo", "seed=0,1"]) is None
    assert preflight(["hydra.run.dir=/tmp/x", "run_dir=/tmp/y"]) is None


def test_describe_error_falls_back_to_the_first_line():
    assert describe_error(ValueError("first line\nsecond"), []) == "first line"


def test_help_lists_every_key_with_its_doc():
    text = help_text(["algo=simpo"])
    assert "loss.gamma_beta_ratio = 0.5" in text
    assert "Target reward margin over β" in text
    assert "algo     apl, bpo, cdpo, copo, dpo, ipo, rdpo, sea, selm, simpo, slic, slic_hf, xpo" in text
    for key in ("sync_every = 1", "learner.zero_stage = 0", "actor.num_samples = 2", "eval.every = 20"):
        assert key in text


def test_configuration_docs_are_in_sync():
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert docs == markdown_help(), "regenerate with: oatlike --markdown-help > docs/configuration.md"


def test_every_field_has_a_docstring():
    for group, option in SHIPPED:
        cfg = compose_dict(f"{group}={option}", *NEEDS.get((group, option), []))
        undocumented = [key for key, _, doc in config_keys(cfg) if not doc]
        assert not undocumented, f"{group}={option}: {undocumented}"


def leaves(node: dict, prefix: str = "") -> dict[str, object]:
    """``{dotted key: value}`` of a plain nested dict."""
    flat: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("path", sorted(CONF_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_option_files_hold_only_what_differs_from_the_defaults(path):
    """A YAML option (or config.yaml) restating a schema default would be a second copy of it to drift."""
    loaded = OmegaConf.to_container(OmegaConf.load(path)) or {}
    assert isinstance(loaded, dict)
    loaded.pop("defaults", None)
    loaded.pop("hydra", None)
    group = path.parent.name
    package = "" if group in ("conf", "algo") else f"{group}."  # algo presets set root keys (@package _global_)
    defaults = OmegaConf.structured(Config)
    restated = [
        key
        for key, value in leaves(loaded).items()
        if not OmegaConf.is_missing(defaults, package + key) and OmegaConf.select(defaults, package + key) == value
    ]
    assert not restated, f"{path.name} restates defaults: {restated}"


def test_plugin_options_are_their_registered_schemas():
    """``loss=``, ``explore=``, ... need no option files: each option is its schema, defaults written once."""
    for group, registry in REGISTRIES.items():
        assert not (CONF_DIR / group).exists(), group
        for option in registry:
            node = compose_dict(f"{group}={option.name}")[group]
            assert OmegaConf.get_type(node) is option.schema and node.name == option.name
