"""The run folder's ``oatlike.log``: what goes there and what stays off the console.

Hydra's ``job_logging`` (``oatlike/conf/config.yaml``) sends every library's INFO messages to ``oatlike.log``
and warnings and errors to stderr too. Some lines reach the console another way (the CLI prints a failed run's
one-line error, the tracker prints its progress lines): logged with ``extra=FILE_ONLY``, they go to the file
only (:class:`ConsoleFilter` on the console handler), so the console does not show them twice. Python's
``warnings`` are logged as well (``py.warnings``), so the file has every warning of the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

LOG_NAME = "oatlike.log"
FILE_ONLY = {"file_only": True}
"""``extra=`` of a record the console already shows by other means."""


class ConsoleFilter(logging.Filter):
    """Lets through the records that are not marked :data:`FILE_ONLY` (on the console handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def ensure_run_log(run_dir: Path) -> None:
    """Make sure the run's log messages reach ``run_dir/oatlike.log`` and that warnings are logged.

    Hydra's file handler writes to its own output folder, which is the run folder unless ``resume=auto``
    found another run to continue (or Hydra's logging was configured away): then a handler for this folder,
    in the same format, is added to the root logger.
    """
    logging.captureWarnings(True)
    target = (run_dir / LOG_NAME).resolve()
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    if any(Path(h.baseFilename).resolve() == target for h in handlers):
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target)
    handler.setFormatter(
        handlers[0].formatter if handlers else logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    )
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
