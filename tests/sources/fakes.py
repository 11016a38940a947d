"""Local contract servers for the Fivetran REST API and the dbt Cloud API v2.

Each answers only requests that follow the real API's contract (its auth header, its paths,
its pagination parameters) and records violations; a test scripts faults (a 429 with
Retry-After, a 503) through ``enqueue``. State (connections, runs) is plain dicts the test edits.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..helpers.http_server import LocalHTTPServer, Request, Response

FIVETRAN_KEY = "ftkey_4Hq8Zr2Lw"
FIVETRAN_SECRET = "ftsecret_9Xv3Bn7Tg5Kp"
DBT_TOKEN = "dbtc_Qm4Ws8Ek2Ry6Ui"


class FakeFivetran(LocalHTTPServer):
    """``GET /v1/connections`` (cursor pages) and ``GET /v1/connections/{id}``, basic auth."""

    def __init__(self, connections: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connections: dict[str, dict[str, Any]] = connections or {}
        self.violations: list[str] = []

    def handle(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{FIVETRAN_KEY}:{FIVETRAN_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self.violations.append(f"bad auth on {request.path}")
            return Response(401, {"code": "AuthFailed", "message": "Invalid API key"})
        if request.method != "GET":
            self.violations.append(f"{request.method} {request.path}")
            return Response(405, {"code": "MethodNotAllowed"})
        fault = self.scripted()
        if fault is not None:
            return fault
        if request.path == "/v1/connections":
            limit = int(request.query_value("limit") or 100)
            if not 1 <= limit <= 1000:
                self.violations.append(f"limit {limit}")
            cursor = request.query_value("cursor")
            start = json.loads(base64.b64decode(cursor))["skip"] if cursor else 0
            ids = sorted(self.connections)
            page = [self.connections[i] for i in ids[start : start + limit]]
            nxt = start + limit
            data: dict[str, Any] = {"items": page}
            if nxt < len(ids):
                data["next_cursor"] = base64.b64encode(json.dumps({"skip": nxt}).encode()).decode()
            return Response(200, {"code": "Success", "data": data})
        if request.path.startswith("/v1/connections/"):
            cid = request.path.rsplit("/", 1)[1]
            if cid not in self.connections:
                return Response(404, {"code": "NotFound_Connection", "message": f"Connection with id '{cid}' doesn't exist"})
            return Response(200, {"code": "Success", "data": self.connections[cid]})
        self.violations.append(f"unknown path {request.path}")
        return Response(404, {"code": "NotFound"})


def connection(
    cid: str,
    name: str,
    *,
    succeeded_at: str | None,
    failed_at: str | None,
    setup_state: str = "connected",
    tasks=(),
    warnings=(),
    paused=False,
) -> dict[str, Any]:
    return {
        "id": cid,
        "group_id": "projected_sickle",
        "service": "postgres",
        "schema": name,
        "paused": paused,
        "succeeded_at": succeeded_at,
        "failed_at": failed_at,
        "sync_frequency": 360,
        "status": {
            "setup_state": setup_state,
            "sync_state": "scheduled",
            "update_state": "on_schedule",
            "is_historical_sync": False,
            "tasks": list(tasks),
            "warnings": list(warnings),
        },
    }


class FakeDbtCloud(LocalHTTPServer):
    """``GET /api/v2/accounts/{account}/runs/`` (limit/offset pages, newest first), token auth."""

    def __init__(self, account_id: int = 43, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account_id = account_id
        self.runs: dict[int, dict[str, Any]] = {}
        self.violations: list[str] = []

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Token {DBT_TOKEN}":
            self.violations.append(f"bad auth on {request.path}")
            return Response(401, {"status": {"code": 401, "is_success": False, "user_message": "Invalid token."}, "data": None})
        fault = self.scripted()
        if fault is not None:
            return fault
        if request.method != "GET" or request.path != f"/api/v2/accounts/{self.account_id}/runs/":
            self.violations.append(f"{request.method} {request.path}")
            return Response(404, {"status": {"code": 404, "is_success": False}, "data": None})
        if request.query_value("order_by") != "-id":
            self.violations.append(f"order_by {request.query_value('order_by')}")
        if "job" not in (request.query_value("include_related") or ""):
            self.violations.append("include_related without job")
        limit, offset = int(request.query_value("limit") or 100), int(request.query_value("offset") or 0)
        if limit > 100:
            self.violations.append(f"limit {limit} > 100")
        runs = sorted(self.runs.values(), key=lambda r: -r["id"])
        job = request.query_value("job_definition_id")
        if job:
            runs = [r for r in runs if str(r["job_definition_id"]) == job]
        page = runs[offset : offset + limit]
        return Response(
            200,
            {
                "status": {"code": 200, "is_success": True},
                "data": page,
                "extra": {"filters": {}, "order_by": "-id", "pagination": {"count": len(page), "total_count": len(runs)}},
            },
        )

    def add_run(
        self, run_id: int, job_id: int, job_name: str, status: int, *, finished_at: str | None, step_failed: str | None = None
    ) -> dict:
        humanized = {1: "Queued", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}[status]
        run = {
            "id": run_id,
            "account_id": self.account_id,
            "job_definition_id": job_id,
            "environment_id": 7,
            "project_id": 99,
            "status": status,
            "status_humanized": humanized,
            "status_message": "Database Error in model fct_loans: relation does not exist" if status == 20 else None,
            "created_at": "2026-11-25 02:00:00.000000+00:00",
            "started_at": "2026-11-25 02:00:05.123456+00:00",
            "finished_at": finished_at,
            "is_complete": status in (10, 20, 30),
            "href": f"https://cloud.getdbt.com/deploy/{self.account_id}/projects/99/runs/{run_id}/",
            "job": {"id": job_id, "name": job_name},
            "environment": {"id": 7, "name": "Production"},
            "run_steps": [
                {"name": "Clone git repository", "status": 10, "status_humanized": "Success"},
                {"name": step_failed or "Invoke dbt with `dbt build`", "status": 20 if step_failed else status, "status_humanized": "x"},
            ],
            "trigger": {"cause": "Kicked off by the scheduler"},
        }
        self.runs[run_id] = run
        return run
