"""Built-in tasks: exact utilities, systematic demonstrator mistakes, disjoint deterministic splits."""

from __future__ import annotations

import random
import statistics

import pytest

from oatlike.tasks.arithmetic import ArithmeticTask, carry_free_sum, digit_credit
from oatlike.tasks.config import ArithmeticTaskConfig, SortingTaskConfig
from oatlike.tasks.sorting import SortingTask, content_score, order_score


@pytest.mark.parametrize(
    ("response", "utility"),
    [
        ("132", 1.0),
        ("0132", 1.0),  # leading zeros are the same number
        ("122", 2 / 3),  # the forgotten carry: one digit of three wrong
        ("32", 2 / 3),  # missing hundreds digit
        ("1320", 0.0),  # every digit misaligned
        ("132 and more", 0.5),  # right number, trailing text: half credit
        ("x132", 0.0),
        ("", 0.0),
    ],
)
def test_arithmetic_partial_credit(response, utility):
    assert ArithmeticTask().utility("85+47=", response) == pytest.approx(utility)


def test_carry_free_sum_and_digit_credit():
    assert carry_free_sum(85, 47) == 122
    assert carry_free_sum(15, 17) == 22
    assert carry_free_sum(23, 45) == 68  # no carry needed: correct
    assert digit_credit("122", "132") == pytest.approx(2 / 3)
    assert digit_credit("5", "105") == pytest.approx(1 / 3)


def test_arithmetic_demonstrator_is_systematically_mediocre():
    task = ArithmeticTask(ArithmeticTaskConfig(p_forget_carry=0.6, p_slip=0.0))
    rng = random.Random(0)
    answers = [task.demonstration("85+47=", rng) for _ in range(2000)]
    assert 0.55 < answers.count("122") / len(answers) < 0.65
    assert set(answers) == {"122", "132"}
    references = [task.utility(p.text, p.reference) for p in ArithmeticTask().split("eval")]
    assert 0.75 < statistics.mean(references) < 0.95  # middling, not perfect, not useless


@pytest.mark.parametrize(
    ("response", "utility"),
    [
        (" 5 7 12 40", 1.0),
        ("5 7 12 40", 1.0),
        (" 12 40 5 7", 2 / 3),  # string order: one of three adjacent pairs descends
        (" 5 7 12", 3 / 4),  # one number missing
        (" 5 7 12 40 40", 4 / 5),  # one number too many
        (" 5 7 x 12 40", 4 / 5),  # a junk token
        (" x", 0.0),
        ("", 0.0),
    ],
)
def test_sorting_partial_credit(response, utility):
    assert SortingTask().utility("sort 12 5 40 7:", response) == pytest.approx(utility)


def test_sorting_scores():
    assert order_score([1]) == 1.0
    assert order_score([3, 2, 1]) == 0.0
    assert content_score([1, 1, 2], [1, 2, 2]) == pytest.approx(2 / 3)


def test_sorting_demonstrator_uses_string_order():
    task = SortingTask(SortingTaskConfig(p_string_order=1.0, p_slip=0.0))
    assert task.demonstration("sort 12 5 40 7:", random.Random(0)) == " 12 40 5 7"
    assert task.best_response("sort 12 5 40 7:") == " 5 7 12 40"


@pytest.mark.parametrize("task", [ArithmeticTask(), SortingTask()], ids=["arithmetic", "sorting"])
def test_splits_are_disjoint_deterministic_and_have_references(task):
    train, evaluation = task.split("train"), task.split("eval")
    assert len(evaluation) == task.num_eval
    assert not {p.text for p in train} & {p.text for p in evaluation}
    assert [p.text for p in evaluation] == [p.text for p in type(task)().split("eval")]
    assert all(p.reference is not None for p in evaluation)
    assert all(0.0 <= task.utility(p.text, p.reference) <= 1.0 for p in evaluation)
    assert all(task.utility(p.text, task.best_response(p.text)) == 1.0 for p in evaluation[:50])
    with pytest.raises(ValueError, match="unknown split"):
        task.split("test")


def test_bad_prompts_are_rejected_clearly():
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        ArithmeticTask().utility("hello", "3")
    with pytest.raises(ValueError, match="not a sorting prompt"):
        SortingTask().utility("sort:", "3")
