"""A stateful fake Jira (Cloud REST v3 or Data Center REST v2) on a real local HTTP server.

It implements the endpoints the Jira receiver uses, keeps issues in memory and checks the
contract on every request: the exact ``Authorization`` header (basic e-mail + API token, or a
bearer PAT), ``Accept`` / ``Content-Type``, the create fields, the ADF of descriptions and comments
(structure and the official schema) or wiki strings for v2, labels without spaces, and that a
transition id is one the issue's current status offers. A request our client should never send is
answered 400 and recorded in ``violations`` (tests assert it stays empty).

Two behaviours of the real service that the receiver must survive are modelled:

- ``create_delay``: the issue is created, then the answer is held (the client times out first);
- ``index_lag``: search (``/search/jql``) only sees issues created at least this long ago, on the
  fake's ``clock`` (give it the test's SimClock), as Jira's search index is eventually consistent.

Faults (429, 503) are scripted with ``enqueue`` and answer the next authenticated request.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from .adf import adf_problems, schema_problems
from .http_server import LocalHTTPServer, Request, Response

STATUS_CATEGORY = {"To Do": "new", "In Progress": "indeterminate", "Done": "done", "Resolved": "done"}
WORKFLOW: dict[str, list[tuple[str, str, str]]] = {  # status -> (id, name, to status) offered there
    "To Do": [("11", "Start progress", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop progress", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
CREATE_KEYS = {"project", "issuetype", "summary", "description", "labels", "priority", "components"}
_CUSTOM = re.compile(r"^customfield_\d+$")
_CLAUSE = re.compile(r'^(labels|project|statusCategory)\s*(=|!=)\s*"?([^"]+?)"?$', re.IGNORECASE)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    created_at: datetime
    status: str = "To Do"
    comments: list[Any] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)  # names applied, in order
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])

    @property
    def done(self) -> bool:
        return STATUS_CATEGORY[self.status] == "done"

    def status_json(self) -> dict[str, Any]:
        return {"name": self.status, "statusCategory": {"key": STATUS_CATEGORY[self.status]}}


def _matches(issue: Issue, name: str, value: str) -> bool:
    """One ``name = value`` JQL clause (labels, project, statusCategory)."""
    if name == "labels":
        return value in issue.labels
    if name == "project":
        return issue.key.startswith(value + "-")
    return STATUS_CATEGORY[issue.status] == value.lower()


def _error(status: int, *messages: str, errors: dict[str, str] | None = None) -> Response:
    return Response(status, {"errorMessages": list(messages), "errors": errors or {}})


class FakeJira(LocalHTTPServer):
    def __init__(
        self,
        *,
        project: str = "DATA",
        email: str | None = "alerts@example.com",
        api_token: str | None = None,
        bearer_token: str | None = None,
        api_version: int = 3,
        issue_types: Iterable[str] = ("Task", "Bug"),
        priorities: Iterable[str] | None = PRIORITIES,
        components: Iterable[str] = (),
        custom_fields: Iterable[str] = (),
        resolutions: Iterable[str] = ("Done", "Fixed", "Won't Do"),
        index_lag: timedelta = timedelta(0),
        clock: Callable[[], datetime] = utcnow,
        create_delay: Callable[[int], float] | None = None,
        check_schema: bool = True,
        workflow: dict[str, list[tuple[str, str, str]]] | None = None,
    ) -> None:
        super().__init__()
        if (api_token is None) == (bearer_token is None):
            raise ValueError("give the fake exactly one of api_token (basic) or bearer_token")
        self.project = project
        self.api_version = api_version
        if bearer_token is not None:
            self.expected_auth = f"Bearer {bearer_token}"
        else:
            self.expected_auth = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self.issue_types = set(issue_types)
        self.priorities = set(priorities) if priorities is not None else None  # None: not on the create screen
        self.components = set(components)
        self.custom_fields = set(custom_fields)
        self.resolutions = set(resolutions)
        self.index_lag = index_lag
        self.clock = clock
        self.create_delay = create_delay
        self.check_schema = check_schema
        self.workflow = workflow or WORKFLOW
        self.issues: list[Issue] = []
        self.violations: list[str] = []
        self.auth_failures = 0
        self.creates_held = 0  # creates whose answer was held past the client's timeout (made anyway)
        self._state = threading.Lock()

    # -- what tests read ---------------------------------------------------------------------------

    def issue(self, key: str) -> Issue:
        return next(i for i in self.issues if i.key == key)

    def with_label(self, label: str) -> list[Issue]:
        return [i for i in self.issues if label in i.labels]

    @property
    def closed(self) -> list[Issue]:
        return [i for i in self.issues if i.done]

    def duplicates(self) -> int:
        """Issues beyond the first per ticket key label (``dm-inc-…``): should always be 0."""
        counts: dict[str, int] = {}
        for issue in self.issues:
            for label in issue.labels:
                if label.startswith("dm-inc-"):
                    counts[label] = counts.get(label, 0) + 1
        return sum(n - 1 for n in counts.values())

    def calls(self, method: str, suffix: str) -> list[Request]:
        """Requests by method and path ending (``"/comment"``, ``"/issue"``, ``"/search/jql"``)."""
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- the contract ------------------------------------------------------------------------------

    def _violation(self, message: str, status: int = 400) -> Response:
        self.violations.append(message)
        return _error(status, message)

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != self.expected_auth:
            self.auth_failures += 1
            return _error(401, "Client must be authenticated to access this resource.")
        if "application/json" not in (request.headers.get("Accept") or ""):
            return self._violation(f"{request.method} {request.path}: Accept must be application/json")
        if request.method in ("POST", "PUT"):
            if (request.headers.get("Content-Type") or "").split(";")[0] != "application/json":
                return self._violation(f"{request.method} {request.path}: Content-Type must be application/json", 415)
            if not isinstance(request.json, dict):
                return self._violation(f"{request.method} {request.path}: body is not a JSON object")
        fault = self.scripted()
        if fault is not None:
            return fault
        prefix = f"/rest/api/{self.api_version}"
        if request.path == "/rest/api/3/search" or request.path == "/rest/api/2/search/jql":
            return self._violation(f"{request.path}: removed / unknown search endpoint", 410)
        if not request.path.startswith(prefix + "/"):
            return self._violation(f"{request.path}: this Jira speaks {prefix} only", 404)
        route = request.path[len(prefix):]
        with self._state:
            return self._route(request, route)

    def _route(self, request: Request, route: str) -> Response:
        method = request.method
        search = "/search/jql" if self.api_version == 3 else "/search"
        if route == "/issue" and method == "POST":
            return self._create(request)
        if route == search and method == "GET":
            return self._search(request)
        match = re.fullmatch(r"/issue/([A-Z][A-Z0-9_]*-\d+)(/comment|/transitions)?", route)
        if not match:
            return self._violation(f"{method} {request.path}: not an endpoint the receiver should use", 404)
        issue = next((i for i in self.issues if i.key == match.group(1)), None)
        if issue is None:
            return _error(404, "Issue does not exist or you do not have permission to see it.")
        tail = match.group(2)
        if tail is None and method == "GET":
            return Response(200, {"id": issue.id, "key": issue.key, "fields": {"status": issue.status_json(), "summary": issue.fields["summary"]}})
        if tail is None and method == "PUT":
            return self._edit(issue, request.json)
        if tail == "/comment" and method == "POST":
            return self._comment(issue, request.json)
        if tail == "/transitions" and method == "GET":
            return Response(200, {"transitions": [
                {"id": tid, "name": name, "to": {"name": to, "statusCategory": {"key": STATUS_CATEGORY[to]}}}
                for tid, name, to in self.workflow[issue.status]
            ]})
        if tail == "/transitions" and method == "POST":
            return self._transition(issue, request.json)
        return self._violation(f"{method} {request.path}: method not used by the receiver", 405)

    def _rich_text(self, value: Any, where: str) -> list[str]:
        """ADF for v3, a non-empty wiki string for v2."""
        if self.api_version == 2:
            return [] if isinstance(value, str) and value.strip() else [f"{where}: v2 expects a non-empty wiki text string"]
        problems = adf_problems(value)
        if not problems and self.check_schema:
            problems = schema_problems(value)
        return [f"{where}: {p}" for p in problems]

    def _create(self, request: Request) -> Response:
        body = request.json
        if set(body) - {"fields", "update"} or not isinstance(body.get("fields"), dict):
            return self._violation("create: body must be {fields: {...}}")
        fields = body["fields"]
        problems: list[str] = []
        unknown = [k for k in fields if k not in CREATE_KEYS and not (_CUSTOM.match(k) and k in self.custom_fields)]
        if unknown:
            return _error(400, errors={k: f"Field '{k}' cannot be set. It is not on the appropriate screen, or unknown." for k in unknown})
        if fields.get("project") != {"key": self.project}:
            return _error(400, errors={"project": "valid project is required"})
        if not isinstance(fields.get("issuetype"), dict) or fields["issuetype"].get("name") not in self.issue_types:
            return _error(400, errors={"issuetype": "Specify a valid issue type"})
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip() or len(summary) > 255 or "\n" in summary:
            problems.append(f"create: summary must be one non-empty line of at most 255 characters, got {summary!r:.80}")
        if "description" in fields:
            problems += self._rich_text(fields["description"], "create: description")
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(not isinstance(label, str) or not label or " " in label or len(label) > 255 for label in labels):
            problems.append(f"create: labels must be strings without spaces, got {labels!r}")
        if "priority" in fields:
            if self.priorities is None:
                return _error(400, errors={"priority": "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."})
            if fields["priority"] not in [{"name": p} for p in self.priorities]:
                return _error(400, errors={"priority": f"The priority selected is invalid: {fields['priority']!r}"})
        for component in fields.get("components", []):
            if component.get("name") not in self.components:
                return _error(400, errors={"components": f"Component name '{component.get('name')}' is not valid"})
        if problems:
            return self._violation("; ".join(problems))
        number = len(self.issues) + 1
        issue = Issue(id=str(10000 + number), key=f"{self.project}-{number}", fields=fields, created_at=self.clock())
        self.issues.append(issue)
        delay = self.create_delay(number) if self.create_delay else 0.0
        if delay:
            self.creates_held += 1
        return Response(201, {"id": issue.id, "key": issue.key, "self": f"{self.base_url}/rest/api/{self.api_version}/issue/{issue.id}"}, delay=delay)

    def _search(self, request: Request) -> Response:
        jql = request.query_value("jql") or ""
        parts = re.match(r"^(.*?)(?:\s+ORDER\s+BY\s+(.*))?$", jql, re.IGNORECASE | re.DOTALL)
        assert parts is not None
        where, order = parts.group(1), parts.group(2) or ""
        if order and not re.fullmatch(r"created\s+(ASC|DESC)", order.strip(), re.IGNORECASE):
            return self._violation(f"search: unsupported ORDER BY {order!r}")
        visible_before = self.clock() - self.index_lag
        found = [i for i in self.issues if i.created_at <= visible_before]
        for clause in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
            m = _CLAUSE.match(clause.strip())
            if not m:
                return self._violation(f"search: Error in the JQL Query: cannot parse {clause!r}")
            name, op, value = m.group(1).lower(), m.group(2), m.group(3)
            found = [i for i in found if _matches(i, name, value) == (op == "=")]
        if order.strip().upper().endswith("DESC"):
            found.reverse()
        limit = int(request.query_value("maxResults") or 50)
        issues = [{"id": i.id, "key": i.key, "fields": {"status": i.status_json()}} for i in found[:limit]]
        if self.api_version == 3:
            return Response(200, {"issues": issues, "isLast": True})
        return Response(200, {"startAt": 0, "maxResults": limit, "total": len(found), "issues": issues})

    def _comment(self, issue: Issue, body: dict[str, Any]) -> Response:
        if set(body) - {"body", "visibility", "properties"} or "body" not in body:
            return self._violation("comment: body must be {body: ...}")
        problems = self._rich_text(body["body"], f"comment on {issue.key}")
        if problems:
            return self._violation("; ".join(problems))
        issue.comments.append(body["body"])
        return Response(201, {"id": str(len(issue.comments)), "body": body["body"]})

    def _transition(self, issue: Issue, body: dict[str, Any]) -> Response:
        if set(body) - {"transition", "fields", "update"} or not isinstance(body.get("transition"), dict):
            return self._violation("transition: body must be {transition: {id}}")
        tid = body["transition"].get("id")
        offered = {t[0]: t for t in self.workflow[issue.status]}
        if tid not in offered:
            return self._violation(f"transition: id {tid!r} is not valid for {issue.key} in status {issue.status!r}")
        resolution = ((body.get("fields") or {}).get("resolution") or {}).get("name")
        if resolution is not None and resolution not in self.resolutions:
            return _error(400, errors={"resolution": f"Resolution '{resolution}' is not valid"})
        _, name, to = offered[tid]
        issue.status = to
        issue.transitions.append(name)
        return Response(204)

    def _edit(self, issue: Issue, body: dict[str, Any]) -> Response:
        fields = body.get("fields")
        if set(body) - {"fields", "update"} or not isinstance(fields, dict):
            return self._violation("edit: body must be {fields: {...}}")
        if "priority" in fields and (self.priorities is None or fields["priority"] not in [{"name": p} for p in self.priorities]):
            return _error(400, errors={"priority": "The priority selected is invalid."})
        issue.fields.update(fields)
        issue.edits.append(fields)
        return Response(204)


def comment_text(comment: Any) -> str:
    """The plain text of an ADF (or wiki) comment, for assertions."""
    if isinstance(comment, str):
        return comment
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                out.append(node["text"])
            for child in node.get("content", []):
                walk(child)

    walk(comment)
    return " ".join(out)
