"""A stateful fake ServiceNow Table API (``/api/now/table/incident``) on a real local HTTP server.

It keeps incident records in memory and checks the contract on every request: the exact
``Authorization`` header (basic or OAuth bearer), ``Accept: application/json``, JSON bodies, known
fields only (the real instance silently ignores unknown fields, and an encoded query on an unknown
field returns every row, so the fake is stricter than the service here), urgency / impact 1-3,
a known assignment group, and, like the default data policy, ``close_code`` + ``close_notes`` when
an incident is resolved (``state=6``), else 400. A resolved incident stays ``active=true`` until it
is closed (``close()`` stands in for the auto-close job), as on a real instance.

``create_delay`` holds the answer to a create after the record was made (the client times out).
Faults (429, 503) are scripted with ``enqueue`` and answer the next authenticated request.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import uuid
from typing import Any, Callable, Iterable

from .http_server import LocalHTTPServer, Request, Response

TABLE = "/api/now/table/incident"
FIELDS = {
    "sys_id", "number", "state", "active", "short_description", "description", "urgency", "impact",
    "assignment_group", "caller_id", "correlation_id", "correlation_display", "category", "subcategory",
    "cmdb_ci", "contact_type", "close_code", "close_notes", "work_notes", "comments", "sys_created_on",
}
WRITABLE = FIELDS - {"sys_id", "number", "active", "sys_created_on"}
CLOSE_CODES = (
    "Solved (Permanently)", "Solved (Work Around)", "Solved Remotely (Permanently)", "Solved Remotely (Work Around)",
    "Not Solved (Not Reproducible)", "Not Solved (Too Costly)", "Closed/Resolved by Caller",
    "Solution provided", "Workaround provided", "No resolution provided",
)
STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}


def _error(status: int, message: str, detail: str = "") -> Response:
    return Response(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(LocalHTTPServer):
    def __init__(
        self,
        *,
        username: str | None = "svc-dagster",
        password: str | None = None,
        bearer_token: str | None = None,
        groups: Iterable[str] = ("Data Engineering", "Platform"),
        users: Iterable[str] = ("svc-dagster",),
        close_codes: Iterable[str] = CLOSE_CODES,
        create_delay: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__()
        if (password is None) == (bearer_token is None):
            raise ValueError("give the fake exactly one of password (basic) or bearer_token")
        if bearer_token is not None:
            self.expected_auth = f"Bearer {bearer_token}"
        else:
            self.expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.groups = set(groups)
        self.users = set(users)
        self.close_codes = set(close_codes)
        self.create_delay = create_delay
        self.records: list[dict[str, Any]] = []  # in creation order; work notes in record["_journal"]
        self.violations: list[str] = []
        self.auth_failures = 0
        self.creates_held = 0
        self._created = itertools.count(1)
        self._state = threading.Lock()

    # -- what tests read ---------------------------------------------------------------------------

    def record(self, number: str) -> dict[str, Any]:
        return next(r for r in self.records if r["number"] == number)

    @property
    def resolved(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["state"] in ("6", "7")]

    def duplicates(self) -> int:
        """Records beyond the first per correlation_id: should always be 0."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r["correlation_id"]] = counts.get(r["correlation_id"], 0) + 1
        return sum(n - 1 for n in counts.values())

    def close(self, number: str) -> None:
        """What the auto-close job does days after a resolve."""
        with self._state:
            record = self.record(number)
            record.update(state="7", active="false")

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    # -- the contract ------------------------------------------------------------------------------

    def _violation(self, message: str, status: int = 400) -> Response:
        self.violations.append(message)
        return _error(status, "Invalid request", message)

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != self.expected_auth:
            self.auth_failures += 1
            return _error(401, "User Not Authenticated", "Required to provide Auth information")
        if request.headers.get("Accept") != "application/json":
            return self._violation(f"{request.method} {request.path}: Accept must be application/json")
        if request.method in ("POST", "PATCH", "PUT"):
            if (request.headers.get("Content-Type") or "").split(";")[0] != "application/json":
                return self._violation(f"{request.method} {request.path}: Content-Type must be application/json", 415)
            if not isinstance(request.json, dict):
                return self._violation(f"{request.method} {request.path}: body is not a JSON object")
        fault = self.scripted()
        if fault is not None:
            return fault
        with self._state:
            if request.path == TABLE and request.method == "GET":
                return self._query(request)
            if request.path == TABLE and request.method == "POST":
                return self._create(request)
            match = re.fullmatch(TABLE + r"/([0-9a-f]{32})", request.path)
            if match and request.method == "PATCH":
                return self._update(match.group(1), request)
        return self._violation(f"{request.method} {request.path}: not an endpoint the receiver should use", 404)

    def _fields(self, request: Request, record: dict[str, Any]) -> dict[str, Any]:
        wanted = request.query_value("sysparm_fields")
        visible = {k: v for k, v in record.items() if not k.startswith("_")}
        if not wanted:
            return visible
        names = wanted.split(",")
        unknown = set(names) - FIELDS
        if unknown:
            self.violations.append(f"sysparm_fields names unknown fields {sorted(unknown)}")
        return {k: visible.get(k, "") for k in names}

    def _query(self, request: Request) -> Response:
        rows = list(self.records)
        order: str | None = None
        for term in (request.query_value("sysparm_query") or "").split("^"):
            if not term:
                continue
            if term.startswith("ORDERBY"):
                order = term.removeprefix("ORDERBY")
                if order.removeprefix("DESC") not in FIELDS:
                    return self._violation(f"query orders by unknown field {order!r}")
                continue
            name, sep, value = term.partition("=")
            if not sep or name not in FIELDS:
                return self._violation(f"query term {term!r}: unknown field (a real instance would return every row)")
            rows = [r for r in rows if str(r.get(name, "")) == value]
        if order:
            rows.sort(key=lambda r: r.get(order.removeprefix("DESC"), ""), reverse=order.startswith("DESC"))
        limit = int(request.query_value("sysparm_limit") or 10000)
        return Response(200, {"result": [self._fields(request, r) for r in rows[:limit]]})

    def _check_values(self, body: dict[str, Any], where: str) -> list[str]:
        problems = []
        unknown = set(body) - WRITABLE
        if unknown:
            problems.append(f"{where}: unknown or read-only fields {sorted(unknown)}")
        for name in ("urgency", "impact"):
            if name in body and str(body[name]) not in ("1", "2", "3"):
                problems.append(f"{where}: {name} must be 1, 2 or 3, got {body[name]!r}")
        if "assignment_group" in body and body["assignment_group"] not in self.groups:
            problems.append(f"{where}: no assignment group {body['assignment_group']!r}")
        if "caller_id" in body and body["caller_id"] not in self.users:
            problems.append(f"{where}: no user {body['caller_id']!r}")
        if "state" in body and str(body["state"]) not in STATES:
            problems.append(f"{where}: unknown state {body['state']!r}")
        if len(str(body.get("correlation_id", ""))) > 100:
            problems.append(f"{where}: correlation_id longer than 100 characters")
        return problems

    def _create(self, request: Request) -> Response:
        body = request.json
        problems = self._check_values(body, "create")
        short = body.get("short_description")
        if not isinstance(short, str) or not short.strip() or len(short) > 160:
            problems.append(f"create: short_description must be 1-160 characters, got {short!r:.60}")
        if not body.get("correlation_id"):
            problems.append("create: correlation_id missing (the receiver's idempotency key)")
        if problems:
            return self._violation("; ".join(problems))
        n = next(self._created)
        record: dict[str, Any] = {name: "" for name in FIELDS - {"work_notes", "comments"}}
        record.update({k: str(v) for k, v in body.items() if k not in ("work_notes", "comments")})
        record.update(sys_id=uuid.uuid4().hex, number=f"INC{10000 + n:07d}", state="1", active="true",
                      sys_created_on=f"{n:08d}", _journal=[])
        if body.get("work_notes"):
            record["_journal"].append(str(body["work_notes"]))
        self.records.append(record)
        delay = self.create_delay(n) if self.create_delay else 0.0
        if delay:
            self.creates_held += 1
        return Response(201, {"result": self._fields(request, record)}, delay=delay)

    def _update(self, sys_id: str, request: Request) -> Response:
        record = next((r for r in self.records if r["sys_id"] == sys_id), None)
        if record is None:
            return _error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        body = request.json
        problems = self._check_values(body, f"update {record['number']}")
        if problems:
            return self._violation("; ".join(problems))
        if str(body.get("state", "")) == "6":
            code = body.get("close_code", record["close_code"])
            notes = body.get("close_notes", record["close_notes"])
            if not code or not notes:
                return _error(400, "Operation Failed",
                              "Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Resolution notes\n")
            if code not in self.close_codes:
                return _error(400, "Operation Failed", f"Invalid close_code {code!r}")
        if record["state"] == "7":
            return _error(403, "Operation Failed", "Closed incidents cannot be updated")
        for key, value in body.items():
            if key in ("work_notes", "comments"):
                record["_journal"].append(str(value))
            else:
                record[key] = str(value)
        return Response(200, {"result": self._fields(request, record)})


def notes(record: dict[str, Any]) -> list[str]:
    """The work notes of a record, oldest first."""
    return list(record["_journal"])
