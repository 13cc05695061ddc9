"""Errors that reach the user as one clear line.

Every user-facing failure raises a subclass of :class:`OatlikeError`. The CLI prints ``oatlike: error: <message>``
and exits non-zero without a traceback; the message names the bad key, file, row or value and how to fix it.
"""

from __future__ import annotations


class OatlikeError(Exception):
    """Base class of the errors that the CLI reports as one line."""


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
    """The training loss became NaN or infinite; the run stops and keeps what it saved."""


class RunStopped(OatlikeError):
    """The run stopped on a signal after saving a full-state checkpoint; ``exit_code`` tells a scheduler why
    (75, EX_TEMPFAIL: preempted by SIGTERM, resume it; 130: Ctrl-C)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OracleError(OatlikeError):
    """The preference oracle could not answer (unreachable server, malformed reply after retries)."""
