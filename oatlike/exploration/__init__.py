"""Exploration plug-ins chosen by ``explore=`` (the interface: :mod:`oatlike.exploration.base`; the configs
and the registry: :mod:`oatlike.exploration.config`).

One module per method: :mod:`~oatlike.exploration.selm`, :mod:`~oatlike.exploration.xpo`,
:mod:`~oatlike.exploration.copo`, :mod:`~oatlike.exploration.sea`, :mod:`~oatlike.exploration.apl`,
:mod:`~oatlike.exploration.bpo`; the loss-term math in each is a pure function checked against the test
vectors of docs/algorithms.md §3-§5.
"""
