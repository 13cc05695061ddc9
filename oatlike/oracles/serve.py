"""Any oracle served over HTTP with Ray Serve: the one module that imports ``ray.serve``.

``oatlike serve-oracle oracle=<kind> ...`` builds the oracle of the config in each of ``serve.replicas``
Ray Serve replicas (on a local Ray, or on a cluster with ``serve.ray_address=auto``) and answers JSON:

=====================  =====================================================  ==============================
request                body                                                   reply
=====================  =====================================================  ==============================
``GET /health``        —                                                      ``{"status": "ok", "oracle",
                                                                              "has_score"}``
``POST /compare``      ``{"prompts", "responses_a", "responses_b"}``          ``{"probabilities": [...]}``
``POST /score``        ``{"prompts", "responses"}``                           ``{"scores": [...]}``
``GET /metrics``       —                                                      this replica's counters
=====================  =====================================================  ==============================

A malformed request gets HTTP 400 and ``/score`` on an oracle without scores HTTP 501, each with
``{"error": ...}``. Requests that arrive together are merged into one oracle call (Ray Serve's dynamic
batching, ``serve.max_batch_requests`` and ``serve.batch_wait_seconds``), so many actors asking for a
few pairs each still fill a reward model's batch. ``oracle=remote oracle.url=...`` is the client.
"""

from __future__ import annotations

import itertools
import logging
import math
import signal
import socket
import threading
from typing import Any

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from oatlike.config import Config
from oatlike.errors import ConfigError

log = logging.getLogger(__name__)

APP_NAME = "oatlike-oracle"


def _texts(body: Any, *fields: str) -> list[list[str]]:
    """The string lists ``fields`` of a request body, all of one length (ValueError otherwise)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    lists = []
    for name in fields:
        value = body.get(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{name!r} must be a list of strings")
        lists.append(value)
    if len({len(v) for v in lists}) > 1:
        raise ValueError(f"{', '.join(fields)} must have the same length")
    return lists


def _split(values: np.ndarray, sizes: list[int]) -> list[list[float]]:
    bounds = np.cumsum([0, *sizes])
    return [values[start:end].tolist() for start, end in itertools.pairwise(bounds)]


class OracleDeployment:
    """One replica: the configured oracle, answering merged batches of requests."""

    def __init__(self, config: Config) -> None:
        from oatlike.builder import Builder  # the replica builds the oracle as a run would

        self.oracle = Builder(config, progress=False).oracle()
        for batched in (self._compare_batch, self._score_batch):  # serve.batch's settings, from the config
            batched.set_max_batch_size(config.serve.max_batch_requests)  # type: ignore[union-attr]
            batched.set_batch_wait_timeout_s(config.serve.batch_wait_seconds)  # type: ignore[union-attr]

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/")
        try:
            if request.method == "GET" and path == "/health":
                return JSONResponse({"status": "ok", "oracle": self.oracle.name, "has_score": self.oracle.has_score})
            if request.method == "GET" and path == "/metrics":
                return JSONResponse(self.oracle.metrics())
            if request.method == "POST" and path == "/compare":
                prompts, a, b = _texts(await request.json(), "prompts", "responses_a", "responses_b")
                return JSONResponse({"probabilities": await self._compare_batch((prompts, a, b))})
            if request.method == "POST" and path == "/score":
                if not self.oracle.has_score:
                    return JSONResponse({"error": f"the {self.oracle.name} oracle has no pointwise score"}, 501)
                prompts, responses = _texts(await request.json(), "prompts", "responses")
                return JSONResponse({"scores": await self._score_batch((prompts, responses))})
        except ValueError as error:  # includes a body that is not JSON
            return JSONResponse({"error": str(error)}, 400)
        return JSONResponse({"error": f"no route {request.method} {path}; see oatlike.oracles.serve"}, 404)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def _compare_batch(self, requests: list[tuple[list[str], list[str], list[str]]]) -> list[list[float]]:
        """Several requests' pairs in one oracle call; each request gets its own slice back."""
        prompts = [p for request in requests for p in request[0]]
        responses_a = [a for request in requests for a in request[1]]
        responses_b = [b for request in requests for b in request[2]]
        probabilities = self.oracle.compare(prompts, responses_a, responses_b)
        return _split(probabilities, [len(request[0]) for request in requests])

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def _score_batch(self, requests: list[tuple[list[str], list[str]]]) -> list[list[float]]:
        prompts = [p for request in requests for p in request[0]]
        responses = [r for request in requests for r in request[1]]
        return _split(self.oracle.score(prompts, responses), [len(request[0]) for request in requests])


def oracle_app(config: Config) -> serve.Application:
    """The Ray Serve application serving ``config.oracle`` with ``config.serve``'s replicas and resources."""
    deployment = serve.deployment(
        OracleDeployment,
        name="oracle",
        num_replicas=config.serve.replicas,
        ray_actor_options={"num_cpus": config.serve.cpus_per_replica, "num_gpus": config.serve.gpus_per_replica},
        # enough requests in flight per replica for dynamic batching to have something to merge
        max_ongoing_requests=4 * config.serve.max_batch_requests,
    )
    return deployment.bind(config)  # type: ignore[attr-defined]


def _check_port_free(host: str, port: int) -> None:
    """A one-line error now, rather than a proxy that cannot bind after Ray has started."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                "serve.port", f"cannot listen on {host}:{port} ({error.strerror}); choose another"
            ) from None


def start(config: Config) -> str:
    """Start Ray (local, or ``serve.ray_address``) and the served oracle; returns its URL."""
    settings = config.serve
    _check_port_free(settings.host, settings.port)
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        cpus = max(1, math.ceil(settings.replicas * settings.cpus_per_replica))
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    serve.start(
        http_options={"host": settings.host, "port": settings.port},
        logging_config={"log_level": "WARNING", "enable_access_log": False},
    )
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # no start-up chatter on the console
    serve.run(oracle_app(config), name=APP_NAME, route_prefix="/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    return f"http://{host}:{settings.port}"


def stop() -> None:
    """Stop the served oracle and the Ray this process started or joined (nothing if none was)."""
    if not ray.is_initialized():  # serve.shutdown() would start a Ray only to find nothing to stop
        return
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def serve_until_stopped(config: Config, announce: Any = print) -> None:
    """Serve ``config.oracle`` until Ctrl-C or SIGTERM; ``announce`` gets one line once it answers."""
    stopped = threading.Event()
    try:
        url = start(config)
        for signum in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs handlers of its own
            signal.signal(signum, lambda *_: stopped.set())
        replicas = config.serve.replicas
        announce(
            f"oatlike: serving the {config.oracle.name} oracle at {url} ({replicas} replica"
            f"{'s' if replicas > 1 else ''}); clients: oracle=remote oracle.url={url} — Ctrl-C stops it"
        )
        stopped.wait()
    finally:
        stop()
