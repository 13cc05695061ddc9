"""Policies and tokenizers: tiny Llama models built from a config, or any causal LM by name or folder."""
