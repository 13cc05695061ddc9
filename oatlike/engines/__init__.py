"""Generation engines behind one interface (``engine=hf``)."""

from oatlike.engines.base import Engine, SamplingParams, SequenceScores
from oatlike.engines.hf import HFEngine

__all__ = ["Engine", "HFEngine", "SamplingParams", "SequenceScores"]
