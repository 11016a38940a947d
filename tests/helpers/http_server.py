"""A small real HTTP server for transport tests (Teams, webhooks, Jira, ServiceNow).

It listens on 127.0.0.1 on a free port, records every request and answers from a scripted
queue of :class:`Response` objects (``default`` once the queue is empty). Fakes of real APIs
subclass :class:`LocalHTTPServer` and override :meth:`LocalHTTPServer.handle` to check a
contract or keep state; :meth:`next_response` gives them the scripted answers.

A response with ``delay`` is held that long before it is sent. If the client hangs up in the
meantime (its timeout fired), nothing is sent and the request is marked ``client_gone``: the
server did not accept it, as a real webhook that never finished processing would not.

    with LocalHTTPServer([Response(500), Response(202)]) as server:
        requests.post(server.url("/hook"), json={...})
        assert server.requests[0].response.status == 500
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Mapping, TypeVar
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

_S = TypeVar("_S", bound="LocalHTTPServer")
_POLL = 0.02  # how often a held response checks whether the client is still there


@dataclass(frozen=True)
class Response:
    """A scripted answer. ``body``: bytes, str (text/plain) or any JSON value (application/json)."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the answer (simulates a slow server / client timeout)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            payload = self.body
        elif isinstance(self.body, str):
            payload = self.body.encode("utf-8")
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            payload = json.dumps(self.body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        return payload, headers


@dataclass
class Request:
    """One request as the server saw it, and what became of it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes
    json: Any  # the parsed body, or None when it is not JSON
    response: Response | None = None
    answered: bool = False  # the response was written to a still-connected client
    client_gone: bool = False  # the client hung up before the (delayed) response
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """The server answered 2xx to a client that was still waiting."""
        return self.answered and self.response is not None and 200 <= self.response.status < 300

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services (and requests' session pool)
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms per answer
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def setup(self) -> None:
        super().setup()
        self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        self.server.owner._connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
            json=_parse_json(body),
        )
        owner._record(request)
        try:
            try:
                response = owner.handle(request)
            except Exception as exc:  # a bug in a fake: answer 500 and let the test see it
                owner.handler_errors.append(f"{type(exc).__name__}: {exc}")
                response = Response(500, f"test server handler failed: {exc!r}")
            request.response = response
            if response.delay and not owner._hold(self.connection, response.delay):
                request.client_gone = True
                self.close_connection = True
                return
            payload, headers = response.encode()
            self.send_response(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            request.answered = True
        finally:
            request.done.set()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "LocalHTTPServer"


class LocalHTTPServer:
    """Start with ``with LocalHTTPServer(...) as server`` (or ``start()`` / ``stop()``)."""

    def __init__(self, responses: Iterable[Response] = (), *, default: Response = Response(200), port: int = 0) -> None:
        self.default = default
        self.requested_port = port  # 0: a free one; a fixed one lets a test bring a "down" receiver back
        self.requests: list[Request] = []
        self.handler_errors: list[str] = []
        self._script: deque[Response] = deque(responses)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()  # open client connections (keep-alive)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- the hook subclasses override ---------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (runs in the server's handler thread)."""
        return self.next_response()

    def next_response(self) -> Response:
        """The next scripted response, or ``default`` when the script is used up."""
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def scripted(self) -> Response | None:
        """The next scripted response, or None when the script is used up: for stateful fakes
        that answer from their state unless a test scripted a fault (a 429, a 503)."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def enqueue(self, *responses: Response) -> None:
        with self._lock:
            self._script.extend(responses)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "LocalHTTPServer":
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", self.requested_port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # releases held (delayed) responses
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._connections):  # kept-alive connections too: the server is gone
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and what was seen ------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path_and_query: str = "/") -> str:
        return self.base_url + (path_and_query if path_and_query.startswith("/") else "/" + path_and_query)

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.settled() if r.accepted]

    def settled(self, timeout: float = 5.0) -> list[Request]:
        """All requests, after each one has been answered or abandoned (a held response finishes
        on the server's thread a moment after the client gave up)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = list(self.requests)
        for request in seen:
            if not request.done.wait(max(deadline - time.monotonic(), 0)):
                raise TimeoutError(f"{request.method} {request.path} still in progress after {timeout}s")
        return seen

    # -- internals --------------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _hold(self, conn: socket.socket, delay: float) -> bool:
        """Wait ``delay`` seconds; False as soon as the client hangs up (or the server stops)."""
        deadline = time.monotonic() + delay
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            readable, _, _ = select.select([conn], [], [], min(remaining, _POLL))
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return False  # EOF: the client closed the connection
                except OSError:
                    return False
                time.sleep(min(remaining, _POLL))  # bytes of a next request: not a hang-up
        return False


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
