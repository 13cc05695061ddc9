"""Generation engines behind one interface (:mod:`oatlike.engines.base`): ``engine=hf`` (:mod:`~oatlike.engines.hf`)
and ``engine=vllm`` (:mod:`~oatlike.engines.vllm_engine`)."""
