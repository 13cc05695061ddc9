"""Prompt data: from a built-in task or from ``datasets.load_dataset`` (see :mod:`oatlike.data.prompts`)."""
