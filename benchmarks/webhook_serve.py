"""Webhook events per second accepted by `dagster-monitoring serve`.

The real command (`python -m dagster_monitoring.cli serve`, uvicorn) runs as a subprocess on a
free localhost port with a SQLite state DB and a file receiver; client threads (one keep-alive
``requests`` session each) post signed Fivetran ``sync_end`` webhooks over 200 connectors, each
failing 4 times then succeeding once, so the run exercises new, ongoing (suppressed) and
recovered. An event is *accepted* when serve answered 200, which it does only after the event
is committed to the state DB. Figures per concurrency level: accepted events/s, latency p50 /
p99, and how many events the ingest thread committed per transaction (group commit). The
clients share the machine with the server (2 cores here), so the figures are a floor.
Run: python benchmarks/webhook_serve.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from dagster_monitoring.sources.webhooks import sign

SECRET = "bench_whsec_4Kd8Wq2Zp6"
CONNECTORS = 200
ROUND = 5  # per connector: 4 failures then a success


def bodies(n: int, offset_minutes: int) -> list[bytes]:
    t0 = datetime(2026, 11, 25, tzinfo=timezone.utc) + timedelta(minutes=offset_minutes)
    out = []
    for i in range(n):
        connector, step = i % CONNECTORS, i // CONNECTORS
        status = "SUCCESSFUL" if step % ROUND == ROUND - 1 else "FAILURE"
        out.append(
            json.dumps(
                {
                    "event": "sync_end",
                    "created": (t0 + timedelta(seconds=step)).isoformat().replace("+00:00", "Z"),
                    "connector_type": "postgres",
                    "connector_id": f"conn_{connector}",
                    "connector_name": f"connector_{connector}",
                    "sync_id": f"sync-{i}",
                    "destination_group_id": "bench",
                    "data": {"status": status, **({} if status == "SUCCESSFUL" else {"reason": "permission denied"})},
                }
            ).encode()
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_all(url: str, payloads: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    chunks = [payloads[i::concurrency] for i in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in chunks]
    failures = [0] * concurrency

    def client(k: int) -> None:
        with requests.Session() as http:
            for body in chunks[k]:
                headers = {"X-Fivetran-Signature-256": sign(SECRET, body).upper(), "Content-Type": "application/json"}
                started = time.perf_counter()
                reply = http.post(url, data=body, headers=headers, timeout=30)
                latencies[k].append(time.perf_counter() - started)
                failures[k] += reply.status_code != 200

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, [x for lane in latencies for x in lane], sum(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per concurrency level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = {
            "receivers": [{"type": "file", "name": "file", "path": str(home / "alerts.jsonl")}],
            "routes": [{"receivers": ["file"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(home / "state.db")},
            "audit": {"enabled": False},
            "sources": {"fivetran": {"webhook_secret": {"env": "BENCH_FT_SECRET"}, "settle": "0s"}},
        }
        (home / "monitoring.yaml").write_text(json.dumps(config))
        port = free_port()
        env = {**os.environ, "BENCH_FT_SECRET": SECRET, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        cmd = [sys.executable, "-m", "dagster_monitoring.cli", "serve", "--config", str(home / "monitoring.yaml"), "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(base + "/healthz", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not start: " + (proc.stderr.read() if proc.stderr else ""))
                time.sleep(0.1)
            print(f"webhook_serve: {args.events} signed Fivetran sync_end posts per level, {CONNECTORS} connectors, SQLite state")
            offset = 0
            for concurrency in (1, 8, 32):
                before = requests.get(base + "/healthz", timeout=5).json()
                elapsed, latencies, failed = post_all(base + "/webhooks/fivetran", bodies(args.events, offset), concurrency)
                after = requests.get(base + "/healthz", timeout=5).json()
                offset += 24 * 60  # a later day, so each level's events are new to the router
                batches = max(after["batches"] - before["batches"], 1)
                routed = after["events_routed"] - before["events_routed"]
                lat = sorted(latencies)
                print(
                    f"concurrency={concurrency:<3} accepted_per_s={args.events / elapsed:,.0f} "
                    f"p50_ms={statistics.median(lat) * 1000:.1f} p99_ms={lat[int(len(lat) * 0.99) - 1] * 1000:.1f} "
                    f"events_per_commit={routed / batches:.1f} non_200={failed}"
                )
            lines, stable_since = -1, time.monotonic()
            while time.monotonic() - stable_since < 1.0:  # the delivery thread drains the outbox
                now = (home / "alerts.jsonl").read_text().count("\n") if (home / "alerts.jsonl").exists() else 0
                if now != lines:
                    lines, stable_since = now, time.monotonic()
                time.sleep(0.1)
            cycles = (args.events // CONNECTORS) // ROUND * CONNECTORS * 3
            print(
                f"notifications_written={lines} (at most {2 * cycles}: a new and a recovered per fail-fail-fail-fail-pass cycle; "
                "concurrent clients deliver a few events of one connector out of order, which the router drops as already seen)"
            )
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
