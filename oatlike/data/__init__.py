"""Prompt data: from a built-in task or from ``datasets.load_dataset`` (see :mod:`oatlike.data.prompts`)."""

from oatlike.data.prompts import PromptSet, PromptStream, load_prompt_sets

__all__ = ["PromptSet", "PromptStream", "load_prompt_sets"]
