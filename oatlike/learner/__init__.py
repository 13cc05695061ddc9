"""The learner: policy, reference, loss, buffer and DeepSpeed engine (see :mod:`oatlike.learner.learner`)."""
