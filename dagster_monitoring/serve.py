"""``dagster-monitoring serve``: one small ASGI app that receives the sources' webhooks.

    POST /webhooks/fivetran    X-Fivetran-Signature-256: <hex HMAC-SHA256 of the body>
    POST /webhooks/dbt_cloud   Authorization: <hex HMAC-SHA256 of the body>
    GET  /healthz
    GET  /actions/{token}      the cards' signed Acknowledge / Silence links (only with actions:);
    POST /actions/{token}      GET shows a confirm page, POST acts (see :mod:`.serve_actions`)

Per request, in order: the body is read (at most 1 MiB, else 413), its signature checked
against the source's ``webhook_secret`` (401, nothing recorded), parsed (400 when it is not a
JSON object or a run event lacks its ids or times), normalised into an :class:`AlertEvent`
(events that say nothing about health, like ``sync_start``, get 200 and are dropped), and handed
to the ingest worker. The answer (200) is sent once the event is committed to the state DB
(its incident state and outbox rows, or the settle table), so an accepted webhook is never lost;
a state DB that fails answers 503 and the source retries.

Answering fast: requests never touch the DB themselves. One ingest thread takes every event
queued meanwhile and routes them in one transaction (group commit: a burst of webhooks costs a
commit per batch, not per request); one delivery thread sends the outbox (a slow Teams never
delays an answer) and retries what failed; every second the ingest thread also releases held
failures whose settle delay passed and lets the router announce due recoveries.

Nothing logged or answered carries a secret, a signature or a body: rejections log their reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .alerting.events import AlertEvent
from .alerting.redact import describe_error, get_logger
from .alerting.router import AlertRouter
from .alerting.state_health import StateStoreError
from .audit.alert_records import external_job_writer
from .audit.trail import AuditTrail
from .config import MonitoringConfig
from .pipeline import build_pipeline
from .serve_actions import action_routes
from .sources import dbt_cloud, fivetran
from .sources.ingest import SourceIngest
from .sources.webhooks import (
    DBT_CLOUD_SIGNATURE_HEADER,
    FIVETRAN_SIGNATURE_HEADER,
    MAX_BODY_BYTES,
    WebhookRejected,
    check_signature,
    parse_json_object,
)

_log = get_logger(__name__)
PATHS = {"fivetran": "/webhooks/fivetran", "dbt_cloud": "/webhooks/dbt_cloud"}


@dataclass
class _Item:
    events: Sequence[AlertEvent]
    future: concurrent.futures.Future[int] = field(default_factory=concurrent.futures.Future)


class IngestWorker:
    """The two threads behind the app: ingest (group commit) and delivery.

    ``submit(events)`` returns a future that completes once the events are committed."""

    def __init__(
        self,
        router: AlertRouter,
        ingest: SourceIngest,
        *,
        batch_max: int = 1000,
        tick_interval: float = 1.0,
        delivery_interval: float = 5.0,
    ) -> None:
        self.router = router
        self.ingest = ingest
        self.batch_max = batch_max
        self.tick_interval = tick_interval
        self.delivery_interval = delivery_interval
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._wake_delivery = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self.events_routed = 0

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._ingest_loop, name="dm-serve-ingest", daemon=True),
            threading.Thread(target=self._delivery_loop, name="dm-serve-deliver", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, deliver once more, and stop both threads."""
        if not self._threads:
            return
        self._queue.put(None)
        self._threads[0].join(timeout)
        self._stopping.set()
        self._wake_delivery.set()
        self._threads[1].join(timeout)
        self._threads = []
        self.router.wait_idle(timeout)

    def submit(self, events: Sequence[AlertEvent]) -> concurrent.futures.Future[int]:
        item = _Item(events)
        self._queue.put(item)
        return item.future

    def _take_batch(self) -> tuple[list[_Item], bool]:
        try:
            first = self._queue.get(timeout=self.tick_interval)
        except queue.Empty:
            return [], False
        if first is None:
            return [], True
        items, count = [first], len(first.events)
        while count < self.batch_max:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # stop after this batch
                break
            items.append(nxt)
            count += len(nxt.events)
        return items, False

    def _ingest_loop(self) -> None:
        while True:
            items, stop = self._take_batch()
            if stop:
                return
            events = [e for item in items for e in item.events]
            try:
                result = self.ingest.ingest(events, deliver=False)
            except Exception as exc:  # the DB failed: every waiting request answers 503, the sources retry
                _log.error("serve: routing %d event(s) failed: %s", len(events), describe_error(exc))
                for item in items:
                    item.future.set_exception(exc)
                continue
            self.batches += 1 if items else 0
            self.events_routed += len(events)
            for item in items:
                item.future.set_result(len(item.events))
            if result.notifications:
                self._wake_delivery.set()

    def _delivery_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake_delivery.wait(self.delivery_interval)
            self._wake_delivery.clear()
            try:
                self.router.deliver_pending()
            except Exception as exc:
                _log.error("serve: delivery failed: %s", describe_error(exc))
        try:
            self.router.deliver_pending()
        except Exception as exc:
            _log.error("serve: delivery failed: %s", describe_error(exc))


Normaliser = Callable[[dict[str, Any]], "AlertEvent | None"]


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise WebhookRejected(413, "body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WebhookRejected(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    config: MonitoringConfig,
    *,
    router: AlertRouter | None = None,
    trail: AuditTrail | None = None,
    clock: Callable[[], datetime] | None = None,
    tick_interval: float = 1.0,
    delivery_interval: float = 5.0,
) -> Starlette:
    """The receiver for ``config.sources``; ``router``, ``trail`` and ``clock`` are injectable for
    tests. The worker threads run for the app's lifespan (``app.state.worker``)."""
    if router is None:
        router, trail = build_pipeline(config)
    ingest = SourceIngest(router, config.sources, clock=clock, on_events=external_job_writer(trail) if trail is not None else None)
    worker = IngestWorker(router, ingest, tick_interval=tick_interval, delivery_interval=delivery_interval)
    sources = config.sources

    def endpoint(name: str, header: str, secret: Any, normalise: Normaliser) -> Callable[[Request], Any]:
        async def receive(request: Request) -> JSONResponse:
            if secret is None:
                return JSONResponse({"error": f"{name} webhooks are not configured (sources.{name}.webhook_secret)"}, status_code=404)
            try:
                body = await _read_body(request)
                check_signature(secret.get_secret_value(), body, request.headers, header)
                event = normalise(parse_json_object(body))
            except WebhookRejected as rejected:
                client = request.client.host if request.client else "?"
                _log.warning("serve: %s webhook from %s rejected (%d): %s", name, client, rejected.status, rejected.message)
                return JSONResponse({"error": rejected.message}, status_code=rejected.status)
            if event is None:
                return JSONResponse({"accepted": 0, "note": "event says nothing about health; ignored"})
            try:
                await asyncio.wrap_future(worker.submit([event]))
            except StateStoreError as exc:
                return JSONResponse({"error": f"state DB unavailable: {exc.problem.kind}"}, status_code=503)
            except Exception:
                return JSONResponse({"error": "could not record the event; retry"}, status_code=503)
            return JSONResponse({"accepted": 1, "fingerprint": event.fingerprint, "status": event.status.value})

        return receive

    def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "sources": _configured(config), "events_routed": worker.events_routed, "batches": worker.batches})

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if config.actions is not None:
        routes.extend(action_routes(config.actions, router.store, router.clock))
    if sources.fivetran is not None:
        ft = sources.fivetran
        routes.append(
            Route(
                PATHS["fivetran"],
                endpoint("fivetran", FIVETRAN_SIGNATURE_HEADER, ft.webhook_secret, lambda p: fivetran.webhook_event(p, ft)),
                methods=["POST"],
            )
        )
    if sources.dbt_cloud is not None:
        dc = sources.dbt_cloud
        routes.append(
            Route(
                PATHS["dbt_cloud"],
                endpoint("dbt_cloud", DBT_CLOUD_SIGNATURE_HEADER, dc.webhook_secret, lambda p: dbt_cloud.webhook_event(p, dc)),
                methods=["POST"],
            )
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        worker.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, worker.stop)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.worker = worker
    app.state.router = router
    app.state.ingest = ingest
    return app


def _configured(config: MonitoringConfig) -> list[str]:
    s = config.sources
    return [
        name for name, cfg in (("fivetran", s.fivetran), ("dbt_cloud", s.dbt_cloud)) if cfg is not None and cfg.webhook_secret is not None
    ]


def serve(config: MonitoringConfig, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "info") -> None:
    """Run the receiver under uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(build_app(config), host=host, port=port, log_level=log_level, access_log=False)


class ServerThread:
    """The app under a real uvicorn on a free localhost port, in a thread (tests, the benchmark).

    with ServerThread(build_app(config)) as server:
        requests.post(server.url("/webhooks/fivetran"), ...)
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1") -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="dm-serve-uvicorn", daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __enter__(self) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
