"""The testbeds where exploration matters (cipher, menu, progression): exact utilities against hand-computed
values, the demonstrators' systematic mistakes, heteroscedastic annotators, and train / tuning / report splits."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from oatlike.config import compose
from oatlike.errors import ConfigError
from oatlike.oracles.config import RuleOracleConfig
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.base import build_task
from oatlike.tasks.cipher import CipherTask
from oatlike.tasks.config import ArithmeticTaskConfig, CipherTaskConfig, MenuTaskConfig, ProgressionTaskConfig
from oatlike.tasks.menu import MenuTask, quality
from oatlike.tasks.progression import ProgressionTask

TESTBEDS = {"cipher": CipherTask, "menu": MenuTask, "progression": ProgressionTask}


@pytest.mark.parametrize(
    ("response", "utility"),
    [
        (" f d e h", 1.0),  # c a b e moved 3 places: c->f, a->d, b->e, e->h
        ("f d e h", 1.0),
        (" c a b e", 0.4),  # the echo: the deceptive local optimum
        (" f a b e", 0.5 * (1 / 4) ** 2),  # the echo with one letter ciphered: far worse than the echo
        (" f d e e", 0.5 * (3 / 4) ** 2),  # one letter short of the cipher: still below the echo
        (" f d e h h", 0.5 * (4 / 5) ** 2),  # a letter too many
        (" f d e", 0.5 * (3 / 4) ** 2),
        ("", 0.0),
    ],
)
def test_cipher_utility(response, utility):
    assert CipherTask().utility("code c a b e:", response) == pytest.approx(utility)


def test_cipher_wraps_around_its_alphabet_and_every_edit_of_the_echo_is_worse():
    task = CipherTask()
    assert task.best_response("code x y z:") == " a b c"  # z is the 22nd letter: 21 + 3 wraps to 2 (c)
    prompt = "code m o s t:"
    echo, target = task.letters(prompt), task.best_response(prompt).split()
    for i in range(len(echo)):  # any one letter changed, to its cipher or any other letter
        for letter in "abcdefghilmnopstuvwxyz":
            if letter != echo[i]:
                edited = [*echo[:i], letter, *echo[i + 1 :]]
                assert task.utility(prompt, " " + " ".join(edited)) < 0.4
    assert all(target[i] != echo[i] for i in range(len(echo)))


def test_menu_utility_from_shared_hidden_qualities():
    task = MenuTask()
    prompt = "menu a0 b5 c9 h3:"
    # q = 0.6·A + 0.4·B: a0 = 0.6·4/7, b5 = 0.6·5/7 + 0.4·2/9, c9 = 0.6 + 0.4·7/9, h3 = 0.4·1/9
    q = {"a0": 0.6 * 4 / 7, "b5": 0.6 * 5 / 7 + 0.4 * 2 / 9, "c9": 0.6 + 0.4 * 7 / 9, "h3": 0.4 / 9}
    assert {item: quality(item) for item in q} == pytest.approx(q)
    span = q["c9"] - q["h3"]
    assert task.utility(prompt, " c9") == 1.0 and task.best_response(prompt) == " c9"
    assert task.utility(prompt, " h3") == 0.0
    assert task.utility(prompt, " b5") == pytest.approx(((q["b5"] - q["h3"]) / span) ** 2)
    assert task.utility(prompt, " a0") == pytest.approx(((q["a0"] - q["h3"]) / span) ** 2)
    assert task.utility(prompt, " d9") == 0.0  # not on this menu
    assert task.utility(prompt, " b5 c9") == 0.0  # one choice only
    # the same item ranks the same on every menu: a reward model can generalise
    assert task.utility("menu b5 h3 a0:", " b5") == 1.0


def test_progression_utility_position_wise():
    task = ProgressionTask()
    prompt = "from 7 by 3 for 6:"
    assert task.best_response(prompt) == " 10 13 16 19 22 25"
    assert task.utility(prompt, " 10 13 16 19 22 25") == 1.0
    assert task.utility(prompt, " 10 13 16") == pytest.approx(3 / 6)  # stopped halfway
    assert task.utility(prompt, " 10 14 17 20 23 26") == pytest.approx(1 / 6)  # a slip, the rest follow it
    assert task.utility(prompt, " 10 14 16 19 22 25") == pytest.approx(5 / 6)  # a slip the rest ignore
    assert task.utility(prompt, " 10 13 16 19 22 25 28 31") == pytest.approx(6 / 8)  # too many
    assert task.utility(prompt, "") == 0.0


def test_demonstrators_make_their_systematic_mistakes():
    rng = random.Random(0)
    cipher = CipherTask()
    answers = [cipher.demonstration("code c a b e:", rng) for _ in range(4000)]
    assert answers.count(" c a b e") / 4000 == pytest.approx(0.5 + 0.5 * 0.45**4, abs=0.03)  # echo
    assert answers.count(" f d e h") / 4000 == pytest.approx(0.5 * 0.55**4, abs=0.015)
    menu = MenuTask()
    picks = [menu.demonstration("menu a0 b5 c9 h3:", rng) for _ in range(4000)]
    assert " c9" not in picks  # it never picks the best unless the best comes first
    assert picks.count(" a0") / 4000 == pytest.approx(0.5 + 0.5 / 3, abs=0.03)
    progression = ProgressionTask()
    lists = [progression.demonstration("from 7 by 3 for 6:", rng) for _ in range(4000)]
    assert sum(len(x.split()) == 3 for x in lists) / 4000 == pytest.approx(0.7, abs=0.03)  # stops halfway
    assert lists.count(" 10 13 16 19 22 25") / 4000 == pytest.approx(0.3 * 0.7**6, abs=0.01)


@pytest.mark.parametrize("name", TESTBEDS)
def test_references_are_middling_and_pairs_of_demonstrations_rarely_alike(name):
    task = build_task(compose(f"task={name}").task)
    assert isinstance(task, TESTBEDS[name])
    report = task.split("report")
    references = [task.utility(p.text, p.reference) for p in report]
    assert 0.25 < statistics.mean(references) < 0.5  # headroom: far from 1
    assert sum(u == 1.0 for u in references) / len(references) < 0.1  # the best is rare
    assert all(task.utility(p.text, task.best_response(p.text)) == 1.0 for p in report)


def test_heteroscedastic_annotators_through_the_rule_oracle():
    menu, oracle_config = MenuTask(), RuleOracleConfig(temperature=0.1)
    prompt = "menu a0 b5 c9 h3:"
    assert menu.annotator_noise(prompt, " a0") == 8.0 and menu.annotator_noise(prompt, " e5") == 8.0
    assert menu.annotator_noise(prompt, " b5") == 1.0 and menu.annotator_noise(prompt, "") == 1.0
    oracle = RuleOracle(oracle_config, menu)
    gap = menu.utility(prompt, " c9") - menu.utility(prompt, " b5")
    controversial_gap = menu.utility(prompt, " c9") - menu.utility(prompt, " a0")
    p = oracle.compare([prompt, prompt], [" c9", " c9"], [" b5", " a0"])
    # T·sqrt((1² + 1²)/2) = T for two ordinary items; T·sqrt((1² + 8²)/2) when one is controversial
    expected = [1 / (1 + math.exp(-gap / 0.1)), 1 / (1 + math.exp(-controversial_gap / (0.1 * math.sqrt(32.5))))]
    np.testing.assert_allclose(p, expected)
    assert p[1] < 0.9 < p[0]  # a bigger gap, yet the controversial pair is the closer call
    progression = RuleOracle(oracle_config, ProgressionTask())
    easy = progression.compare(["from 7 by 1 for 4:"], [" 8 9 10 11"], [" 8 9"])[0]
    hard = progression.compare(["from 7 by 7 for 4:"], [" 14 21 28 35"], [" 14 21"])[0]
    assert easy == pytest.approx(1 / (1 + math.exp(-0.5 / 0.1)))
    assert hard == pytest.approx(1 / (1 + math.exp(-0.5 / 0.4)))  # step 7: noise 1 + 0.5·6 = 4
    arithmetic = RuleOracle(oracle_config, ArithmeticTask())  # the default: no task-supplied noise
    assert arithmetic.temperatures(["1+1="], ["2"], ["3"]).tolist() == [0.1]


@pytest.mark.parametrize("name", TESTBEDS)
def test_train_tuning_and_report_splits_are_disjoint_and_deterministic(name):
    task = build_task(compose(f"task={name}").task)
    train, tuning, report = (task.split(s) for s in ("train", "tuning", "report"))
    assert len(tuning) == task.num_tuning == 256 and len(report) == task.num_eval == 256
    texts = [{p.text for p in split} for split in (train, tuning, report)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    assert sum(map(len, texts)) == len(set(task.all_problems()))
    assert [p.text for p in task.split("eval")] == [p.text for p in report]
    assert [p.text for p in TESTBEDS[name]().split("tuning")] == [p.text for p in tuning]
    on_tuning = build_task(compose(f"task={name}", "task.eval_split=tuning").task)
    assert [p.text for p in on_tuning.split("eval")] == [p.text for p in tuning]
    assert [p.text for p in on_tuning.split("train")] == [p.text for p in train]  # the same training prompts


def test_tasks_without_a_tuning_split_keep_their_cut():
    task = ArithmeticTask()
    assert task.split("tuning") == [] and task.split("eval") == task.split("report")
    with_tuning = ArithmeticTask(ArithmeticTaskConfig(num_tuning=100))
    assert [p.text for p in with_tuning.split("report")] == [p.text for p in task.split("report")]
    assert len(with_tuning.split("train")) == len(task.split("train")) - 100
    with pytest.raises(ConfigError, match=r"^task\.eval_split: tuning needs task\.num_tuning > 0"):
        compose("task.eval_split=tuning")
    with pytest.raises(ConfigError, match=r"^task\.eval_split: must be one of"):
        compose("task.eval_split=test")


def test_testbed_configs_are_checked():
    with pytest.raises(ConfigError, match=r"^shift: must be in 1\.\.21"):
        CipherTaskConfig(shift=22)
    with pytest.raises(ConfigError, match=r"^menu_size: must be in 2\.\.80"):
        MenuTaskConfig(menu_size=1)
    with pytest.raises(ConfigError, match=r"^num_eval: \+ num_tuning must be below the 1400 prompts"):
        ProgressionTaskConfig(num_eval=1200)
    with pytest.raises(ValueError, match="not a cipher prompt"):
        CipherTask().utility("code 1 2:", " a")


@pytest.mark.timeout(60)
def test_options_with_few_distinct_prompts_give_all_there_are_and_a_one_line_error():
    """One-letter words allow 22 cipher prompts and two-item menus 80·79: the prompts drawn are all of them
    (the draw gives up instead of looping forever), and a split that leaves no training prompts says so."""
    cipher = CipherTask(CipherTaskConfig(min_length=1, max_length=1))
    assert len(cipher.all_problems()) == 22
    with pytest.raises(ConfigError, match=r"leaves no training prompts \(22 in all\)"):
        cipher.split("train")
    menus = MenuTask(MenuTaskConfig(menu_size=2)).all_problems()
    assert len(menus) == len(set(menus)) == 80 * 79
