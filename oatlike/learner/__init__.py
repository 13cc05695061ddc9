"""The learner: policy, reference, loss, buffer and DeepSpeed engine (see :mod:`oatlike.learner.learner`)."""

from oatlike.learner.learner import Learner

__all__ = ["Learner"]
