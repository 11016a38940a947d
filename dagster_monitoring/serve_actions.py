"""``GET`` / ``POST /actions/{token}``: the signed Acknowledge and Silence links of the cards.

A ``GET`` never acts: link previewers, mail scanners and Teams' unfurler fetch links on their
own. It checks the link and answers a page with a confirm button (a POST form). The ``POST``
checks the link again, uses its nonce (a row in the state DB, in the same transaction as the
change, so of two concurrent clicks one acts) and acknowledges the incidents or silences them.

Answers: 403 a forged or malformed link, 410 an expired one, 409 one already used; each a small
page, and nothing changed. The token is never logged (refusals log their reason only).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .alerting.actions import ACK, ActionRefused, ActionsConfig, ActionToken, verify_token
from .alerting.durations import human_duration
from .alerting.lifecycle import IncidentState
from .alerting.redact import get_logger
from .alerting.silences import new_ack, new_silence
from .alerting.state import SqlStateStore, used_nonces
from .alerting.state_health import StateStoreError

_log = get_logger(__name__)
PATH = "/actions/{token}"
MAX_FORM_BYTES = 4096
DEFAULT_AUTHOR = "teams-link"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex", "X-Frame-Options": "DENY"}
_TITLES = {403: "This link is not valid", 409: "This link was already used", 410: "This link has expired"}
_HINTS = {
    403: "It was changed or not made by this monitoring. Nothing was done.",
    409: "Each link acts once. Nothing more was done; see `dagster-monitoring silence list`.",
    410: "Links work for a limited time. Nothing was done; use `dagster-monitoring silence add` instead.",
}


@dataclass(frozen=True)
class Done:
    """What a POST did, for its page."""

    lines: tuple[str, ...]


class ActionService:
    """The checks and changes behind the endpoint, on the router's state DB and clock."""

    def __init__(self, config: ActionsConfig, store: SqlStateStore, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self._key = config.signing_key.get_secret_value()

    def check(self, token: str) -> ActionToken:
        """The verified token, or :class:`ActionRefused` (403, 410, or 409 when already used)."""
        found = verify_token(self._key, token, self.clock())
        with self.store.transaction() as conn:
            used = conn.execute(sa.select(used_nonces.c.nonce).where(used_nonces.c.nonce == found.nonce)).first()
        if used is not None:
            raise ActionRefused(409, "link already used")
        return found

    def incidents(self, token: ActionToken) -> dict[str, IncidentState]:
        with self.store.transaction() as conn:
            return self.store.load(conn, [fp for fp, _ in token.incidents])

    def apply(self, token: str, author: str) -> Done:
        """Act once: the nonce is used in the same transaction as the change."""
        now = self.clock()
        found = verify_token(self._key, token, now)
        lines: list[str] = []
        with self.store.transaction() as conn:
            if not self.store.use_nonce(conn, found.nonce, found.action, now, found.expires_at):
                raise ActionRefused(409, "link already used")
            states = self.store.load(conn, [fp for fp, _ in found.incidents])
            for fingerprint, incident_id in found.incidents:
                state = states.get(fingerprint)
                if found.action == ACK:
                    if state is None or not state.is_open or state.incident_id != incident_id:
                        lines.append(f"{fingerprint}: already recovered, nothing to acknowledge.")
                        continue
                    ack = new_ack(secrets.token_hex(5), fingerprint, incident_id, author=author, comment="from the card link", now=now)
                    self.store.acknowledge(ack, conn)
                    lines.append(f"{fingerprint}: acknowledged by {author} (id {ack.id}); no reminders until it recovers.")
                else:
                    until = now + self.config.silence_duration
                    made = new_silence(
                        secrets.token_hex(5),
                        [("fingerprint", fingerprint)],
                        author=author,
                        comment=f"from the card link of incident {incident_id}",
                        now=now,
                        ends_at=until,
                    )
                    self.store.add_silence(made, conn)
                    lines.append(f"{fingerprint}: silenced by {author} until {until:%Y-%m-%d %H:%M} UTC (id {made.id}).")
        return Done(tuple(lines))


def _entity(state: IncidentState | None, fingerprint: str) -> str:
    event = state.last_event if state is not None else None
    return event.entity if event is not None else fingerprint


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><meta name='referrer' content='no-referrer'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em'>"
        f"<h1 style='font-size:1.4em'>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_HEADERS,
    )


def _refused(request: Request, refused: ActionRefused) -> HTMLResponse:
    client = request.client.host if request.client else "?"
    _log.warning("serve: action link from %s refused (%d): %s", client, refused.status, refused.reason)
    return _page(
        _TITLES.get(refused.status, "Refused"), f"<p>{html.escape(_HINTS.get(refused.status, refused.reason))}</p>", refused.status
    )


def _unavailable(exc: StateStoreError) -> HTMLResponse:
    return _page(
        "Try again in a minute", f"<p>The alert state DB is unavailable ({html.escape(exc.problem.kind)}). Nothing was done.</p>", 503
    )


def action_routes(config: ActionsConfig, store: SqlStateStore, clock: Callable[[], datetime]) -> list[Route]:
    service = ActionService(config, store, clock)
    what = {ACK: "Acknowledge", "silence": f"Silence for {human_duration(config.silence_duration)}"}
    meaning = {
        ACK: "No more reminders until it recovers; its recovery is still announced, and a new failure after that notifies again.",
        "silence": f"No new, reminder or escalation messages for {human_duration(config.silence_duration)}; "
        "everything is still recorded. End it early with `dagster-monitoring silence expire ID`.",
    }

    async def confirm(request: Request) -> HTMLResponse:
        token = request.path_params["token"]
        try:
            found = await run_in_threadpool(service.check, token)
            states = await run_in_threadpool(service.incidents, found)
        except ActionRefused as refused:
            return _refused(request, refused)
        except StateStoreError as exc:
            return _unavailable(exc)
        items = "".join(
            f"<li><b>{html.escape(_entity(states.get(fp), fp))}</b><br><small>{html.escape(fp)}</small></li>" for fp, _ in found.incidents
        )
        form = (
            "<form method='post'>"
            "<label>Your name (optional) <input name='name' maxlength='100' autocomplete='name'></label> "
            f"<button type='submit'>{html.escape(what[found.action])}</button></form>"
        )
        return _page(f"{what[found.action]}?", f"<ul>{items}</ul><p>{html.escape(meaning[found.action])}</p>{form}")

    async def act(request: Request) -> HTMLResponse:
        token = request.path_params["token"]
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return _page("Too large", "<p>The form is too large. Nothing was done.</p>", 413)
        name = (parse_qs(body.decode("utf-8", "replace")).get("name") or [""])[0]
        author = " ".join(name.split())[:100] or DEFAULT_AUTHOR
        try:
            done = await run_in_threadpool(service.apply, token, author)
        except ActionRefused as refused:
            return _refused(request, refused)
        except StateStoreError as exc:
            return _unavailable(exc)
        return _page("Done", "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in done.lines) + "</ul>")

    async def endpoint(request: Request) -> HTMLResponse:
        return await (act(request) if request.method == "POST" else confirm(request))

    return [Route(PATH, endpoint, methods=["GET", "POST"])]
