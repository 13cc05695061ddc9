"""Built-in tasks with a known utility (see :mod:`oatlike.tasks.base`)."""
