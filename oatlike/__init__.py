"""oatlike: online alignment of language models from preference feedback.

The loop (DESIGN.md): an actor generates K responses per prompt, an explorer picks the pair to show a
preference oracle, and a DeepSpeed learner trains a direct-alignment loss on the labelled pairs, sending
its weights back to the actor every ``sync_every`` steps. Start with ``oatlike --help``.
"""

__version__ = "0.1.0"
