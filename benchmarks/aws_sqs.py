"""AWS job events per second through the SQS sensor path.

moto runs in server mode (a real HTTP endpoint on a free localhost port, in this process) with
one SQS queue holding N EventBridge "Glue Job State Change" events over 100 jobs (each failing 4
times then succeeding once, so the run exercises new, ongoing and recovered). The real Dagster
sensor (``build_aws_eventbridge_sensor``) is ticked until the queue is empty: boto3 receive (10
per call) → normalise → the router (SQLite state, file receiver) → delete (10 per call), with the
audit trail on (DuckDB, ``external_job_runs``) and off. Figures: events/s end to end, and the
share of the time spent in SQS calls. moto's SQS costs ~80-200 ms per call on a queue of a few
hundred to thousands of messages (it scans the queue), so through moto the figure is moto's;
the same sensor on an in-memory client with boto3's request and reply shapes measures this
package's path (normalise, route, audit, delete).
Run: python benchmarks/aws_sqs.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

JOBS = 100
ROUND = 5  # per job: 4 failures then a success
REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def glue_events(n: int) -> list[dict[str, Any]]:
    t0 = datetime.now(timezone.utc) - timedelta(days=1)
    out = []
    for i in range(n):
        job, step = i % JOBS, i // JOBS
        state = "SUCCEEDED" if step % ROUND == ROUND - 1 else "FAILED"
        out.append(
            {
                "version": "0",
                "id": f"evt-{i}",
                "detail-type": "Glue Job State Change",
                "source": "aws.glue",
                "account": "123456789012",
                "time": (t0 + timedelta(minutes=step)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [],
                "detail": {
                    "jobName": f"job_{job:03d}",
                    "severity": "ERROR",
                    "state": state,
                    "jobRunId": f"jr_{i}",
                    "message": "failed to execute with exception Table orders_raw not found" if state == "FAILED" else "",
                },
            }
        )
    return out


class MemorySqs:
    """The two SQS calls the sensor makes, in memory (same request and reply shapes as boto3's),
    to measure this package's path without moto's cost."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}  # visible
        self.in_flight: dict[str, dict[str, Any]] = {}  # received, not deleted (no timeout here)
        self.next = 0

    def create_queue(self, QueueName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/123456789012/{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        for entry in Entries:
            handle = f"rh-{self.next}"
            self.next += 1
            self.messages[handle] = {"MessageId": handle, "ReceiptHandle": handle, "Body": entry["MessageBody"]}
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, **_: Any) -> dict[str, Any]:  # noqa: N803
        taken = [self.messages.pop(handle) for handle in list(self.messages)[:MaxNumberOfMessages]]
        self.in_flight.update((m["ReceiptHandle"], m) for m in taken)
        return {"Messages": taken} if taken else {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        for entry in Entries:
            self.in_flight.pop(entry["ReceiptHandle"], None)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.messages) + len(self.in_flight))}}


class Timed:
    """The boto3 client with its receive / delete calls timed."""

    def __init__(self, client: Any) -> None:
        self.client, self.seconds, self.calls = client, 0.0, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def timed(**kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(**kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


def run(n: int, audit: bool, backend: str) -> dict[str, Any]:
    import boto3
    import dagster as dg
    from moto.server import ThreadedMotoServer

    from dagster_monitoring.config import config_from_dict
    from dagster_monitoring.runtime import MonitoringRuntime
    from dagster_monitoring.sensors.sources import build_aws_eventbridge_sensor

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client: Any = (
            MemorySqs()
            if backend == "memory"
            else boto3.client("sqs", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x")
        )
        url = client.create_queue(QueueName=f"bench-{audit}")["QueueUrl"]
        events = glue_events(n)
        for start in range(0, n, 10):
            client.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": json.dumps(e)} for j, e in enumerate(events[start : start + 10])]
            )
        with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
            out = Path(tmp) / "alerts.jsonl"
            config = config_from_dict(
                {
                    "receivers": [{"type": "file", "name": "file", "path": str(out)}],
                    "routes": [{"receivers": ["file"]}],
                    "policy": {"flap_window": "0s"},
                    "state": {"path": str(Path(tmp) / "state.db")},
                    "audit": {"duckdb_path": str(Path(tmp) / "audit.duckdb"), "spool_dir": str(Path(tmp) / "spool")}
                    if audit
                    else {"enabled": False},
                    "sources": {"aws_eventbridge": {"queue_url": url, "region": REGION, "endpoint_url": endpoint, "wait_time_seconds": 0}},
                }
            )
            timed = Timed(client)
            sensor = build_aws_eventbridge_sensor(runtime=MonitoringRuntime(config), client=timed)
            ticks = 0
            start = time.perf_counter()
            while True:
                message = sensor(dg.build_sensor_context(instance=instance)).skip_message or ""
                ticks += 1
                if message.startswith("aws_eventbridge: 0 message(s)"):
                    break
            elapsed = time.perf_counter() - start
            notifications = len(out.read_text().splitlines()) if out.exists() else 0
            rows = None
            if audit:
                from dagster_monitoring.audit.sinks.duckdb import DuckDBSink

                rows = DuckDBSink(Path(tmp) / "audit.duckdb").query("SELECT count(*) FROM dagster_audit.external_job_runs")[1][0][0]
        left = int(
            client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
    finally:
        server.stop()
    return {
        "sqs": backend,
        "events": n,
        "audit": audit,
        "ticks": ticks,
        "seconds": round(elapsed, 2),
        "events_per_s": round(n / elapsed),
        "sqs_share_pct": round(100 * timed.seconds / elapsed),
        "sqs_calls": timed.calls,
        "notifications": notifications,
        "audit_rows": rows,
        "left_in_queue": left,
    }


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events through the in-memory queue")
    parser.add_argument("--moto-events", type=int, default=500, help="events through moto (slow on a deep queue)")
    args = parser.parse_args()
    for backend, n in (("memory", args.events), ("moto", args.moto_events)):
        for audit in () if n <= 0 else (False, True):
            result = run(n, audit, backend)
            print(" ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
