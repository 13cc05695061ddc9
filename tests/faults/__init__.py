"""The table of bad inputs and faults (``tests/test_faults.py`` runs it): one module per area, each with a
list ``CASES`` of :class:`~faults.harness.Fault`."""
