"""Versioned weight sync from learner rank 0 to the actors (see :mod:`oatlike.sync.group`)."""
