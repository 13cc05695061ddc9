"""Console, metrics files and W&B (see :mod:`oatlike.tracking.tracker`)."""
