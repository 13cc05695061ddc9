"""Evaluation of the policy (see :mod:`oatlike.eval.evaluator`)."""
