"""Errors that reach the user as one clear line.

Every user-facing failure raises a subclass of :class:`OatlikeError`. The CLI prints ``oatlike: error: <message>``
and exits non-zero without a traceback; the message names the bad key, file, row or value and how to fix it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OatlikeError(Exception):
    """Base class of the errors that the CLI reports as one line."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none), for a one-line report."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class ConfigError(OatlikeError):
    """A config key has a bad value, is unknown, or contradicts another key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def with_prefix(self, prefix: str) -> ConfigError:
        """The same error with its key placed under ``prefix`` (``beta`` -> ``loss.beta``)."""
        key = f"{prefix}.{self.key}" if prefix and self.key else (prefix or self.key)
        return ConfigError(key, self.message)


class DataError(OatlikeError):
    """A dataset file, split, column or row cannot be used."""


class NonFiniteLossError(OatlikeError):
    """The loss, the gradients or the weights became NaN or infinite; the run stops and keeps what it saved.

    ``weights_intact`` is False when an optimizer step already made the weights non-finite: then the policy
    is not worth saving, and the last full-state checkpoint is where to go on from.
    """

    def __init__(self, message: str, weights_intact: bool = True) -> None:
        super().__init__(message)
        self.weights_intact = weights_intact

    def __reduce__(self) -> tuple:  # through Ray and pickle with the flag
        return type(self), (str(self), self.weights_intact)


class RunStopped(OatlikeError):
    """The run stopped on a signal after saving a full-state checkpoint; ``exit_code`` tells a scheduler why
    (75, EX_TEMPFAIL: preempted by SIGTERM, resume it; 130: Ctrl-C)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunCrashed(OatlikeError):
    """An unexpected error (a bug, or a fault oatlike does not know yet) stopped the run after it kept what
    it had collected; the message says where, and the traceback is in the run's ``oatlike.log``."""


class OracleError(OatlikeError):
    """The preference oracle could not answer (unreachable server, malformed reply after retries)."""


class CompareError(OatlikeError):
    """What ``oatlike compare`` was given cannot be compared: a folder that is not a run, a metric or an axis
    that the runs do not record."""


class StorageError(OatlikeError):
    """A file or folder of the run cannot be written (permissions, a full disk, a read-only file system)."""


@contextmanager
def writing(path: Path | str, what: str, fix: str = "free disk space or make the folder writable") -> Iterator[None]:
    """Turn an ``OSError`` while writing ``what`` to ``path`` into one :class:`StorageError` line ending in
    ``fix``."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise StorageError(f"cannot write {what} to {path} ({reason}); {fix}") from None


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be made and written in (its nearest existing ancestor is a file, or refuses a
    new file: permissions, a read-only file system), or ``None`` when it can."""
    existing = folder.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{existing} is not writable ({error.strerror or error})"
    return None
