"""Console, metrics files and W&B (see :mod:`oatlike.tracking.tracker`)."""

from oatlike.tracking.tracker import Tracker, summary_table

__all__ = ["Tracker", "summary_table"]
