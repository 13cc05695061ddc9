"""JSON over HTTP for the oracles behind a server (``remote``, ``judge``): the one module that speaks HTTP.

The standard library's ``urllib`` is enough for JSON requests, so no HTTP client is a dependency. What
this module decides for every caller:

* a timeout on every request (``timeout_seconds``);
* which failures are worth a retry: connection errors, timeouts, replies that are not JSON (a proxy's
  error page, a body cut off, bytes that are not even UTF-8), HTTP 429 and 5xx. They are retried
  ``max_retries`` times with exponential backoff (``backoff_seconds``, doubled each time), each retry
  logged as a warning; then :class:`~oatlike.errors.OracleError` is raised;
* other HTTP statuses (400, 401, 404, ...) are not retried: :class:`HttpStatusError` carries the status
  so that the caller can say what to fix.

Headers (an API key) are never logged and never appear in an error message.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from oatlike.errors import OracleError

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class HttpStatusError(OracleError):
    """The server answered with an HTTP status that a retry will not change (400, 401, 404, ...)."""

    def __init__(self, status: int, url: str, detail: str) -> None:
        self.status = status
        self.url = url
        self.detail = detail
        super().__init__(f"{url} answered HTTP {status}{': ' + detail if detail else ''}")


class RequestFailed(OracleError):
    """No good reply after every attempt (connection errors, timeouts, 429/5xx); ``problem`` is the last one."""

    def __init__(self, server: str, url: str, attempts: int, problem: str) -> None:
        self.problem = problem
        times = "once" if attempts == 1 else f"{attempts} times"
        super().__init__(f"{server} at {url} failed {times}; last: {problem}")


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def describe_failure(error: BaseException) -> str:
    """A short reason for a failed request: ``connection refused``, ``timed out``, ..."""
    if isinstance(error, urllib.error.URLError):
        if not isinstance(error.reason, BaseException):
            return str(error.reason)
        error = error.reason
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        return "the reply is not JSON"
    text = _first_line(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class JsonHttpClient:
    """Sends JSON requests to one server, with a timeout and retries with exponential backoff."""

    def __init__(
        self,
        base_url: str,
        timeout_seconds: float = 60.0,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        headers: dict[str, str] | None = None,
        server: str = "the server",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.server = server
        self._headers = dict(headers or {})

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, retries: int | None = None, on_retry: Callable[[], None] | None = None) -> Any:
        """The JSON reply of ``GET path``."""
        return self.request("GET", path, None, retries, on_retry)

    def post(
        self, path: str, payload: Any, retries: int | None = None, on_retry: Callable[[], None] | None = None
    ) -> Any:
        """The JSON reply of ``POST path`` with ``payload`` as its JSON body."""
        return self.request("POST", path, payload, retries, on_retry)

    def request(
        self,
        method: str,
        path: str,
        payload: Any,
        retries: int | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> Any:
        """Send one request, retrying what a retry can fix; ``on_retry`` is called before each retry.

        Raises:
            HttpStatusError: a status that is not retried.
            RequestFailed: no good reply after ``1 + retries`` attempts.
        """
        retries = self.max_retries if retries is None else retries
        url = self.url(path)
        for attempt in range(retries + 1):
            try:
                return self._send(method, url, payload)
            except urllib.error.HTTPError as error:
                detail = _first_line(error.read().decode("utf-8", "replace"))
                if error.code not in RETRYABLE_STATUSES:
                    raise HttpStatusError(error.code, url, detail) from None
                problem = f"HTTP {error.code}{': ' + detail if detail else ''}"
            except (OSError, http.client.HTTPException, json.JSONDecodeError, UnicodeDecodeError) as error:
                problem = describe_failure(error)
            if attempt == retries:
                raise RequestFailed(self.server, url, attempt + 1, problem)
            wait = self.backoff_seconds * 2**attempt
            log.warning("%s at %s: %s; retry %d/%d in %.1f s", self.server, url, problem, attempt + 1, retries, wait)
            if on_retry is not None:
                on_retry()
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, payload: Any) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Accept": "application/json", **self._headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            return json.loads(response.read().decode("utf-8"))
