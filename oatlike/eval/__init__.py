"""Evaluation of the policy (see :mod:`oatlike.eval.evaluator`)."""

from oatlike.eval.evaluator import Evaluator

__all__ = ["Evaluator"]
