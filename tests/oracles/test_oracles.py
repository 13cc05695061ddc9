"""Oracle kinds on their own: the shared interface, the reward model, PairRM, and the config checks."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from helpers import make_config
from oracle_fixtures import tiny_pairrm_checkpoints
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from oatlike.cli import preflight
from oatlike.errors import ConfigError
from oatlike.oracles.base import Oracle, OracleSite, bradley_terry, build_oracle
from oatlike.oracles.config import OracleConfig, PairRMOracleConfig, RewardModelOracleConfig, RuleOracleConfig
from oatlike.oracles.pairrm import MARKERS, PairRMOracle, load_pairrm
from oatlike.oracles.reward_model import RewardModelOracle
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.arithmetic import ArithmeticTask

PROMPTS = ["85+47=", "12+30=", "99+1=", "40+2=", "7+5="]
A = ["132", "42", "100", "42", "12"]
B = ["122", "43", "90", "24", "12"]

# ------------------------------------------------------------------------------------------ interface


class RecordingOracle(Oracle):
    """A test double (named as such): answers 0.25 and records the chunks and threads it was called with."""

    name = "recording"

    def __init__(self, batch_size: int, concurrency: int) -> None:
        super().__init__(OracleConfig(batch_size=batch_size, concurrency=concurrency))
        self.chunks: list[int] = []
        self.threads: set[int] = set()
        self.barrier = threading.Barrier(concurrency) if concurrency > 1 else None

    def _compare(self, prompts, responses_a, responses_b):
        self.chunks.append(len(prompts))
        self.threads.add(threading.get_ident())
        if self.barrier is not None:
            self.barrier.wait(timeout=60)  # every worker must be in here at once, or this times out
        self.count("tokens", 10 * len(prompts))
        return np.full(len(prompts), 0.25)


def test_calls_are_chunked_counted_and_run_concurrently():
    sequential = RecordingOracle(batch_size=3, concurrency=1)
    assert sequential.compare(["p"] * 8, ["a"] * 8, ["b"] * 8).tolist() == [0.25] * 8
    assert sequential.chunks == [3, 3, 2] and len(sequential.threads) == 1
    oracle = RecordingOracle(batch_size=2, concurrency=2)
    probabilities = oracle.compare(["p"] * 8, ["a"] * 8, ["b"] * 8)
    assert probabilities.tolist() == [0.25] * 8
    assert oracle.chunks == [2, 2, 2, 2]
    assert len(oracle.threads) == 2  # the barrier let two chunks through together, twice
    metrics = oracle.metrics()
    assert metrics["queries"] == 8 and metrics["calls"] == 1 and metrics["tokens"] == 80
    assert metrics["latency_seconds"] == metrics["seconds"] > 0
    assert oracle.compare([], [], []).shape == (0,) and oracle.queries == 8
    with pytest.raises(ValueError, match="compare got 2 prompts, 1 a's and 2 b's"):
        oracle.compare(["p", "q"], ["a"], ["b", "c"])


def test_a_fork_shares_the_model_but_counts_on_its_own():
    oracle = RuleOracle(RuleOracleConfig(batch_size=2), ArithmeticTask())
    twin = oracle.fork()
    twin.compare(PROMPTS, A, B)
    assert (twin.queries, oracle.queries) == (5, 0)
    assert twin.task is oracle.task and twin.batch_size == 2
    oracle.count("retries", 2)
    assert twin.retries == 0 and oracle.metrics()["retries"] == 2


def test_bradley_terry():
    np.testing.assert_allclose(
        bradley_terry(np.array([0.0, 1.0, -2.0]), 0.5), [0.5, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(4))]
    )


# ---------------------------------------------------------------------------------------- reward model


@pytest.fixture(scope="module")
def reward_model_folder(tmp_path_factory, tiny_untrained):
    """An untrained tiny Llama reward model (one output) on the project's tokenizer, saved like any HF model."""
    folder = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_untrained, num_labels=1)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # rewards of order one, so the gaps are visible
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_untrained).save_pretrained(folder)
    return folder


def test_reward_model_compares_by_the_bradley_terry_of_its_reward_gap(reward_model_folder):
    config = RewardModelOracleConfig(model=str(reward_model_folder), temperature=2.0, batch_size=2)
    oracle = build_oracle(config)
    assert isinstance(oracle, RewardModelOracle) and oracle.has_score
    rewards = oracle.score(PROMPTS, A)
    assert oracle.queries == 5 and np.ptp(rewards) > 0
    # one sequence at a time, unpadded: the batched, padded rewards must match
    alone = np.concatenate([oracle.rewards([p], [a]) for p, a in zip(PROMPTS, A, strict=True)])
    np.testing.assert_allclose(rewards, alone, rtol=1e-4, atol=1e-5)
    probabilities = oracle.compare(PROMPTS, A, B)
    expected = bradley_terry(oracle.rewards(PROMPTS, A) - oracle.rewards(PROMPTS, B), 2.0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)
    assert probabilities[-1] == pytest.approx(0.5)  # identical responses
    assert oracle.queries == 10 and oracle.calls == 2


def test_reward_model_chat_template_and_truncation_keep_the_response(reward_model_folder):
    oracle = build_oracle(RewardModelOracleConfig(model=str(reward_model_folder), chat_template=True, max_length=12))
    text = oracle.format("85+47=", "132")
    assert text.startswith("<|user|>\n85+47=\n<|assistant|>\n132")
    long_prompt = "1+" * 200 + "1="
    ids = oracle.tokenizer([oracle.format(long_prompt, "132")], truncation=True, max_length=12)["input_ids"][0]
    assert len(ids) == 12 and "132" in oracle.tokenizer.decode(ids)


def test_reward_model_errors_name_the_key(tmp_path, tiny_untrained):
    with pytest.raises(ConfigError, match=r"^oracle.model: no such folder './missing-rm'"):
        build_oracle(RewardModelOracleConfig(model="./missing-rm"))
    two_outputs = tmp_path / "two"
    AutoModelForSequenceClassification.from_pretrained(tiny_untrained, num_labels=2).save_pretrained(two_outputs)
    AutoTokenizer.from_pretrained(tiny_untrained).save_pretrained(two_outputs)
    with pytest.raises(ConfigError, match=r"eval.oracle.model: .* has 2 outputs; a reward model has one"):
        build_oracle(RewardModelOracleConfig(model=str(two_outputs)), OracleSite(key="eval.oracle"))


# ---------------------------------------------------------------------------------------------- PairRM


@pytest.fixture(scope="module")
def pairrm(tmp_path_factory):
    return tiny_pairrm_checkpoints(tmp_path_factory.mktemp("pairrm"))


def reference_logit(model, tokenizer, prompt: str, first: str, second: str) -> float:
    """llm-blender's recipe for one pair written out plainly: encode three segments with <|candidate|>,
    swap in the candidate1/2 markers, concatenate, pick the marker states, apply the head to each side."""
    source = tokenizer.encode("<|source|>" + prompt)
    one = tokenizer.encode("<|candidate|>" + first)
    two = tokenizer.encode("<|candidate|>" + second)
    candidate, candidate1, candidate2 = tokenizer.convert_tokens_to_ids(
        ["<|candidate|>", "<|candidate1|>", "<|candidate2|>"]
    )
    one = [candidate1 if t == candidate else t for t in one]
    two = [candidate2 if t == candidate else t for t in two]
    ids = torch.tensor([source + one + two])
    with torch.no_grad():
        outputs = model.pretrained_model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        states = outputs.hidden_states[-1][0]
        position = ids[0].tolist().index
        source_state = states[position(source[1])]  # source[0] is [CLS]
        left = model.head_layer(torch.cat([source_state, states[position(candidate1)]]))
        right = model.head_layer(torch.cat([source_state, states[position(candidate2)]]))
    return float((left - right).mean())


@pytest.mark.parametrize("checkpoint_format", ["hf", "original"])
def test_pairrm_loads_both_formats_and_matches_llm_blenders_recipe(pairrm, checkpoint_format):
    config = PairRMOracleConfig(model=str(pairrm[checkpoint_format]), backbone=str(pairrm["backbone"]), batch_size=2)
    oracle = build_oracle(config)
    assert isinstance(oracle, PairRMOracle) and not oracle.has_score
    model, tokenizer = oracle.model, oracle.tokenizer
    expected = [
        reference_logit(model, tokenizer, p, a, b) - reference_logit(model, tokenizer, p, b, a)
        for p, a, b in zip(PROMPTS, A, B, strict=True)
    ]
    probabilities = oracle.compare(PROMPTS, A, B)
    np.testing.assert_allclose(probabilities, bradley_terry(np.array(expected)), rtol=1e-4, atol=1e-6)
    assert np.ptp(probabilities) > 0.01  # the tiny model's head has a real scale
    # both orders: swapping the responses gives the complementary probability, and a tie for identical ones
    np.testing.assert_allclose(oracle.compare(PROMPTS, B, A), 1 - probabilities, rtol=1e-4, atol=1e-6)
    assert probabilities[-1] == pytest.approx(0.5)
    assert oracle.queries == 10


def test_pairrm_one_order_truncation_and_marker_text(pairrm):
    model, tokenizer = load_pairrm(str(pairrm["hf"]), "unused")
    oracle = PairRMOracle(
        PairRMOracleConfig(both_orders=False, source_max_length=16, candidate_max_length=8), model, tokenizer
    )
    logit = reference_logit(model, tokenizer, PROMPTS[0], A[0], B[0])
    assert oracle.compare(PROMPTS[:1], A[:1], B[:1])[0] == pytest.approx(
        float(bradley_terry(np.array(logit))), rel=1e-4
    )
    ids = oracle.encode_pair("sort " * 50, "12 " * 50, "<|source|> 3 [SEP] 4")
    marker_ids = tokenizer.convert_tokens_to_ids(list(MARKERS[:3]))
    assert [ids.count(m) for m in marker_ids] == [1, 1, 1]  # marker text in a response is neutralised
    assert len(ids) <= 16 + 2 * 8
    assert oracle.compare(["sort " * 50], ["12 " * 50], ["<|source|> 3"]).shape == (1,)


def test_pairrm_errors_name_the_key(pairrm, tmp_path):
    with pytest.raises(ConfigError, match=r"^oracle.model: no such folder './no-pairrm'"):
        build_oracle(PairRMOracleConfig(model="./no-pairrm"))
    with pytest.raises(ConfigError, match=r"^oracle.backbone: .*no-backbone"):
        build_oracle(PairRMOracleConfig(model=str(pairrm["original"]), backbone=str(tmp_path / "no-backbone")))
    no_markers = tmp_path / "no-markers"
    model, _ = load_pairrm(str(pairrm["hf"]), "unused")
    model.save_pretrained(no_markers)
    AutoTokenizer.from_pretrained(pairrm["backbone"]).save_pretrained(no_markers)
    with pytest.raises(ConfigError, match="lacks PairRM's <\\|source\\|> token"):
        build_oracle(PairRMOracleConfig(model=str(no_markers)))
    config = json.loads((pairrm["original"] / "config.json").read_text())
    assert config["ranker_type"] == "pairranker"


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["oracle=reward_model"], "oracle.model: oracle=reward_model needs oracle.model=<hub name or local folder>"),
        (["oracle=judge"], "oracle.model: oracle=judge needs oracle.model=<model name of the endpoint>"),
        (["oracle=remote"], "oracle.url: oracle=remote needs oracle.url=http://<host>:<port>"),
        (["oracle=remote", "oracle.url=localhost:8000"], "oracle.url: oracle=remote needs oracle.url="),
        (["oracle.batch_size=0"], "oracle.batch_size: must be >= 1, got 0"),
        (["oracle=judge", "oracle.model=m", "oracle.base_url=api.openai.com"], "oracle.base_url: must start with http"),
        (["oracle=judge", "oracle.model=m", "oracle.max_retries=-1"], "oracle.max_retries: must be >= 0"),
        (["oracle=pairrm", "oracle.temperature=0"], "oracle.temperature: must be > 0"),
        (["eval.oracle=judge"], "eval.oracle.model: oracle=judge needs oracle.model="),
        (["eval.oracle=judgee"], "unknown oracle 'judgee' (did you mean 'judge'?)"),
        (
            ["eval.oracle=judge", "eval.oracle.modle=x"],
            "unknown config key 'eval.oracle.modle' (did you mean 'eval.oracle.model'?)",
        ),
        (["serve.port=0"], "serve.port: must be in 1..65535, got 0"),
        (["serve.replicas=0"], "serve.replicas: must be >= 1"),
    ],
)
def test_bad_oracle_settings_fail_with_one_line_naming_the_key(overrides, message):
    error = preflight(overrides)
    assert error is not None and message in error, error
    assert "\n" not in error


def test_eval_oracle_shorthand_and_the_default(tmp_path):
    default = make_config(tmp_path)
    assert default.eval.oracle is None
    config = make_config(
        tmp_path, "oracle@eval.oracle=judge", "eval.oracle.model=m", "eval.oracle.template=summarization"
    )
    assert (config.eval.oracle.name, config.eval.oracle.model, config.oracle.name) == ("judge", "m", "rule")
    assert preflight(["eval.oracle=judge", "eval.oracle.model=m"]) is None
    assert preflight(["-m", "eval.oracle=rule,judge", "eval.oracle.model=m"]) is not None  # rule has no .model
    assert preflight(["-m", "eval.oracle=rule,pairrm"]) is None
