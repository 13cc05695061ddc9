"""Preference oracles behind one interface, chosen by ``oracle=`` (see :mod:`oatlike.oracles.base`).

| ``oracle=``      | module                               | answers with                                         |
|------------------|--------------------------------------|------------------------------------------------------|
| ``rule``         | :mod:`oatlike.oracles.rule`          | Bradley–Terry over a built-in task's true utility     |
| ``reward_model`` | :mod:`oatlike.oracles.reward_model`  | Bradley–Terry over a sequence-classification model    |
| ``pairrm``       | :mod:`oatlike.oracles.pairrm`        | llm-blender's PairRM, both orders                     |
| ``judge``        | :mod:`oatlike.oracles.judge`         | an LLM judge behind an OpenAI-compatible endpoint     |
| ``remote``       | :mod:`oatlike.oracles.remote`        | any of these, served by ``oatlike serve-oracle``      |

Each kind's module is imported when it is built (:func:`oatlike.oracles.base.build_oracle`), so choosing
``rule`` loads nothing more.
"""
