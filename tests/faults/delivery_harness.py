"""Delivery fault scenarios: a real router, a real local receiver, one injected fault each.

Every scenario queues a batch of distinct alerts, lets the fault act, ends it, ticks until the
outbox is empty, and counts from what the receiver itself saw:

* ``lost``: alerts queued but never accepted by the receiver (must be 0);
* ``duplicates``: accepted more than once, against ``duplicate_bound`` (what the design allows:
  the deliveries in flight when the fault struck);
* ``max_tick_s``: the longest router call during the fault (a sensor tick held that long).

The tests in ``test_delivery_faults.py`` assert on these; ``benchmarks/faults.py`` prints them
as a table. Loopback only, bounded in time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster_monitoring.alerting import AlertRouter

from ..helpers.factories import SimClock, make_event, make_router
from ..helpers.http_server import LocalHTTPServer, Request, Response
from ..helpers.smtp_server import SmtpServer, free_port

REPO = Path(__file__).resolve().parents[2]
MAX_TICKS = 40


@dataclass
class FaultResult:
    scenario: str
    alerts: int
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_bound: int = 0
    max_tick_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def delivery_config(tmp: Path, receivers: list[dict[str, Any]], **delivery: Any) -> dict[str, Any]:
    """Short timeouts, a small tick budget and a lease longer than it: faults play out in seconds."""
    return {
        "receivers": receivers,
        "routes": [{"receivers": [r["name"] for r in receivers]}],
        "policy": {"flap_window": "0s"},
        "delivery": {
            "attempts_per_call": 2,
            "initial_backoff": "1s",
            "max_backoff": "1m",
            "max_inline_wait": "0s",
            "tick_budget": "1s",
            "lease": "3s",
            **delivery,
        },
        "state": {"path": str(tmp / "state.db")},
    }


def failing_events(n: int, prefix: str = "job") -> list[Any]:
    return [make_event(f"{prefix}_{i:04d}") for i in range(n)]


class CountingHook(LocalHTTPServer):
    """A webhook that records which notification each accepted POST carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", Response(200))
        super().__init__(*args, **kwargs)
        self.on_request: Callable[[Request], None] | None = None

    def start(self) -> CountingHook:
        super().start()
        assert self._httpd is not None
        self._httpd.handle_error = lambda *args: None  # type: ignore[method-assign]  # a killed client's broken pipe
        return self

    def handle(self, request: Request) -> Response:
        if self.on_request is not None:
            self.on_request(request)
        return self.next_response()

    def accepted_keys(self) -> Counter[str]:
        return Counter(_key(r.json) for r in self.accepted)


def _key(payload: dict[str, Any]) -> str:
    return f"{payload['incident']['fingerprint']}|{payload['transition']}"


def webhook_receiver(url: str, timeout: str = "0.5s") -> dict[str, Any]:
    return {"type": "webhook", "name": "hook", "url": url, "timeout": timeout}


def tick_until_drained(router: AlertRouter, clock: SimClock, ticks: list[float], *, step: timedelta = timedelta(minutes=2)) -> None:
    """Move time past every backoff and tick until nothing is pending (or MAX_TICKS)."""
    for _ in range(MAX_TICKS):
        counts = router.store.outbox_counts()
        if not counts.get("pending"):
            return
        clock.advance(seconds=step.total_seconds())
        start = time.perf_counter()
        router.tick()
        ticks.append(time.perf_counter() - start)
        router.deliverer.wait_idle(10)
    raise AssertionError(f"outbox not drained after {MAX_TICKS} ticks: {router.store.outbox_counts()}")


def _timed(ticks: list[float], fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        return fn()
    finally:
        ticks.append(time.perf_counter() - start)


def http_fault(tmp: Path, scenario: str, faults: Iterable[Response], n_alerts: int = 20) -> FaultResult:
    """The receiver answers ``faults`` first (5xx, 429 + Retry-After, held past the client's
    timeout), then 200."""
    with CountingHook(list(faults)) as hook:
        clock = SimClock()
        router = make_router(delivery_config(tmp, [webhook_receiver(hook.url("/hook"))]), clock)
        ticks: list[float] = []
        _timed(ticks, lambda: router.process(failing_events(n_alerts)))
        fault_ticks = list(ticks)
        tick_until_drained(router, clock, ticks)
        router.store.dispose()
        return _count(scenario, n_alerts, hook.accepted_keys(), 0, fault_ticks + ticks)


def refused(tmp: Path, n_alerts: int = 20, down_ticks: int = 3) -> FaultResult:
    """Nothing listens on the receiver's port for a few ticks; then it comes up on that port."""
    port = free_port()
    clock = SimClock()
    router = make_router(delivery_config(tmp, [webhook_receiver(f"http://127.0.0.1:{port}/hook")]), clock)
    ticks: list[float] = []
    _timed(ticks, lambda: router.process(failing_events(n_alerts)))
    for _ in range(down_ticks):
        clock.advance(minutes=2)
        _timed(ticks, router.tick)
    pending = router.store.outbox_counts().get("pending", 0)
    with CountingHook(port=port) as hook:
        tick_until_drained(router, clock, ticks)
        router.store.dispose()
        result = _count("transport refused (nothing listening)", n_alerts, hook.accepted_keys(), 0, ticks)
    result.notes["pending_while_down"] = pending
    return result


class HungSmtp:
    """Accepts SMTP connections and never says a word (no greeting): a hung mail relay."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def hung_smtp(tmp: Path, n_alerts: int = 5, smtp_timeout: float = 3.0) -> FaultResult:
    """E-mail relay hung (accepts, never answers) next to a healthy webhook: the tick must not
    wait for the relay, the webhook must get everything at once, and every e-mail must go out
    once the relay is back."""
    port = free_port()
    hung = HungSmtp(port)
    with CountingHook() as hook:
        receivers = [
            webhook_receiver(hook.url("/hook")),
            {"type": "email", "name": "mail", "host": "127.0.0.1", "port": port, "security": "none", "from": "dm@example.com",
             "to": ["oncall@example.com"], "timeout": f"{smtp_timeout}s"},
        ]
        clock = SimClock()
        router = make_router(delivery_config(tmp, receivers), clock)
        ticks: list[float] = []
        _timed(ticks, lambda: router.process(failing_events(n_alerts)))
        hook_at_first_tick = len(hook.accepted_keys())
        clock.advance(minutes=2)
        _timed(ticks, router.tick)  # the mail worker is still busy: not claimed twice
        fault_ticks = list(ticks)
        router.deliverer.wait_idle(smtp_timeout * 4)
        hung.close()
        with SmtpServer(port=port) as smtp:
            tick_until_drained(router, clock, ticks)
            mails = Counter(m["Subject"] for m in smtp.messages())
        router.store.dispose()
    result = _count("SMTP relay hung", n_alerts, hook.accepted_keys(), 0, fault_ticks)
    result.notes.update(
        webhook_delivered_in_first_tick=hook_at_first_tick,
        mails=sum(mails.values()),
        distinct_mails=len(mails),
        mail_timeout_s=smtp_timeout,
    )
    result.lost += n_alerts - len(mails)
    result.duplicates += sum(mails.values()) - len(mails)
    return result


# -- SIGKILL mid-delivery -----------------------------------------------------------------------

WORKER = """
import json, sys, time
from dagster_monitoring.alerting import AlertRouter
from dagster_monitoring.config import config_from_dict
from tests.faults.delivery_harness import failing_events
spec = json.loads(sys.argv[1])
router = AlertRouter(config_from_dict(spec["config"]))
router.process(failing_events(spec["alerts"]))   # a replay after a crash is idempotent
while router.store.outbox_counts().get("pending"):
    router.tick()
    time.sleep(0.05)
router.wait_idle(10)
"""


def sigkill_mid_delivery(tmp: Path, n_alerts: int = 400, kills: int = 10) -> FaultResult:
    """A process delivering ``n_alerts`` is SIGKILLed ``kills`` times, each time while a POST is
    in flight (the receiver has it but has not answered); a new process takes over each time.
    Each kill may re-send the one in-flight delivery, nothing more."""
    kill_every = max(n_alerts // (kills + 1), 1)
    state = {"posts": 0, "kills": 0, "proc": None}
    lock = threading.Lock()

    def maybe_kill(request: Request) -> None:
        with lock:
            state["posts"] += 1
            if state["kills"] < kills and state["posts"] % kill_every == 0 and state["proc"] is not None:
                state["kills"] += 1
                os.kill(state["proc"].pid, signal.SIGKILL)
                state["proc"].wait(10)  # dead before the answer goes out: the post is in flight

    with CountingHook() as hook:
        hook.on_request = maybe_kill
        config = delivery_config(tmp, [webhook_receiver(hook.url("/hook"), timeout="5s")], lease="1s", tick_budget="0.5s")
        spec = json.dumps({"config": config, "alerts": n_alerts})
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        runs = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            proc = subprocess.Popen([sys.executable, "-c", WORKER, spec], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            with lock:
                state["proc"] = proc
            output, _ = proc.communicate(timeout=120)
            runs += 1
            if proc.returncode == 0:
                break
            if proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"worker failed ({proc.returncode}):\n{output.decode(errors='replace')[-3000:]}")
        received = Counter(_key(r.json) for r in hook.settled(10) if r.json)
    result = _count("SIGKILL mid-delivery", n_alerts, received, state["kills"], [])
    result.notes.update(kills=state["kills"], processes=runs, posts=state["posts"])
    return result


def _count(scenario: str, n_alerts: int, accepted: Counter[str], bound: int, ticks: list[float]) -> FaultResult:
    return FaultResult(
        scenario=scenario,
        alerts=n_alerts,
        delivered=len(accepted),
        lost=n_alerts - len(accepted),
        duplicates=sum(accepted.values()) - len(accepted),
        duplicate_bound=bound,
        max_tick_s=round(max(ticks, default=0.0), 3),
    )


def all_scenarios(tmp_factory: Callable[[str], Path]) -> list[FaultResult]:
    """Every delivery scenario, for the benchmark table."""
    return [
        http_fault(tmp_factory("5xx"), "transport 5xx", [Response(500)] * 6 + [Response(503)] * 6),
        http_fault(tmp_factory("429"), "transport 429 + Retry-After", [Response(429, headers={"Retry-After": "30"})] * 4),
        http_fault(tmp_factory("timeout"), "transport timeout", [Response(200, delay=1.5)] * 3),
        refused(tmp_factory("refused")),
        hung_smtp(tmp_factory("hung")),
        sigkill_mid_delivery(tmp_factory("kill")),
    ]
