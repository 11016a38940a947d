"""Alert memory and the outbox, in one SQLAlchemy database.

SQLite (a file under ``$DAGSTER_HOME`` by default) for one machine; PostgreSQL (the server a
production Dagster already runs) by URL. Incidents are one JSON document per fingerprint plus the
columns queries need; every router call reads and writes them in batches inside one transaction,
because a commit per event is what makes a state store slow.

SQLite transactions start with ``BEGIN IMMEDIATE`` and Postgres claims rows with
``FOR UPDATE SKIP LOCKED``, so two processes (the daemon and a CLI) never deliver the same row.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .events import AlertEvent, Severity, Status
from .grouping import HeldGroup
from .json_text import dump_document, to_json
from .lifecycle import IncidentState, Phase, ReceiverMark, Transition
from .notification import Notification
from .redact import describe_error, get_logger
from .silences import ACK, StoredSilence, matchers_from_json, matchers_json
from .state_health import CORRUPT, UNAVAILABLE, SqliteFileGuard, StateProblem, StateStoreError, classify_db_error, describe_location

_log = get_logger(__name__)

metadata = sa.MetaData()

incidents = sa.Table(
    "dm_alert_incidents",
    metadata,
    sa.Column("fingerprint", sa.String(255), primary_key=True),
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)


def _placeholder(conn: Connection) -> str:
    """The driver's parameter marker: ``?`` for sqlite3, ``%s`` for the PostgreSQL drivers."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


# -- incidents: the stored state document ------------------------------------------------------
#
# Format 2 (written now) is one compact JSON array per state, in this order:
#   [2, phase, incident_id, first_failed_at, last_failed_at, last_success_at, resolving_since,
#    last_seen_at, consecutive_failures, flaps, severity, last_event, receivers, tickets, fixed_by]
# ``last_event`` is [source, kind, entity, status, severity, occurred_at, summary, details, owners,
# tags, links, run_id, next_action] or null; ``receivers`` maps a name to [notified_at, severity,
# transition]. Times are integer microseconds since 1970-01-01 UTC: exact, and an integer is
# several times cheaper to write as JSON than a float or an ISO string. Arrays, because a state
# is written for every event of every call: no key names to encode and decode. Format 1 (one JSON object,
# ``IncidentState.from_dict``) is still read, so a state DB written by earlier versions loads;
# a row is rewritten as format 2 when its incident next changes.

STATE_FORMAT = 2
_PHASES = {p.value: p for p in Phase}
_SEVERITIES = {s.value: s for s in Severity}
_TRANSITIONS = {t.value: t for t in Transition}
_STATUSES = {s.value: s for s in Status}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


# A state carries up to seven times and most are the same few moments from one save to the next
# (first failure, last failure, the receivers' marks): the conversion is remembered (bounded).
_MICROS: dict[datetime, int] = {}


def _time(at: datetime | None) -> int | None:
    if at is None:
        return None
    micros = _MICROS.get(at)
    if micros is None:
        if len(_MICROS) >= 16384:
            _MICROS.clear()
        micros = _MICROS[at] = (at - _EPOCH) // _MICROSECOND
    return micros


def _from_time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def encode_state(s: IncidentState) -> str:
    """The state as stored (format 2). Enum members are ``str`` subclasses: JSON writes their value."""
    e = s.last_event
    event = (
        None
        if e is None
        else [
            e.source,
            e.kind,
            e.entity,
            e.status,
            e.severity,
            _time(e.occurred_at),
            e.summary,
            e.details,
            e.owners,
            e.tags,
            e.links,
            e.run_id,
            e.next_action,
        ]
    )
    return dump_document(
        [
            STATE_FORMAT,
            s.phase,
            s.incident_id,
            _time(s.first_failed_at),
            _time(s.last_failed_at),
            _time(s.last_success_at),
            _time(s.resolving_since),
            _time(s.last_seen_at),
            s.consecutive_failures,
            s.flaps,
            s.severity,
            event,
            {name: [_time(m.notified_at), m.severity, m.transition] for name, m in s.receivers.items()},
            s.tickets,
            s.fixed_by,
        ]
    )


def decode_state(fingerprint: str, blob: str) -> IncidentState:
    """A stored state, in either format."""
    data = json.loads(blob)
    if data.__class__ is dict:
        return IncidentState.from_dict({**data, "fingerprint": fingerprint})  # format 1
    if data[0] != STATE_FORMAT:
        raise ValueError(f"state of {fingerprint!r} has format {data[0]!r}; this version reads formats 1 and {STATE_FORMAT}")
    # fixed_by (the 15th item) came later: a 14-item row of an earlier version has none
    (_, phase, incident_id, first, last_failed, last_success, resolving, last_seen, failures, flaps, severity, event, marks, tickets) = (
        data[:14]
    )
    fixed_by = data[14] if len(data) > 14 else None
    if event is not None:
        source, kind, entity, status, ev_severity, at, summary, details, owners, tags, links, run_id, next_action = event
        event = AlertEvent(
            source,
            kind,
            entity,
            _STATUSES[status],
            _SEVERITIES[ev_severity],
            _from_time(at),  # type: ignore[arg-type]
            summary,
            details,
            tuple(owners),
            tags,
            links,
            run_id,
            next_action,
        )
    return IncidentState(
        fingerprint,
        _PHASES[phase],
        incident_id,
        _from_time(first),
        _from_time(last_failed),
        _from_time(last_success),
        _from_time(resolving),
        _from_time(last_seen),
        failures,
        flaps,
        _SEVERITIES[severity] if severity else None,
        event,
        {name: ReceiverMark(_from_time(at), _SEVERITIES[sev], _TRANSITIONS[tr]) for name, (at, sev, tr) in marks.items()},  # type: ignore[arg-type]
        tickets,
        fixed_by,
    )


def _pairs(result: Any) -> list[tuple[str, str]]:
    """(fingerprint, state) rows; Row is a tuple (SQLAlchemy 2.1 deprecates ``Result.tuples``)."""
    return result.all()


class _KnownStates:
    """The last stored document of recently loaded or saved fingerprints, with its state.

    A router call loads the states the previous call saved; when the row read back is exactly the
    document remembered here, a copy of the remembered state is the answer and nothing is parsed.
    Anything else (a row another process wrote, a save that was rolled back) differs and is
    decoded. The only difference from decoding: a value JSON cannot hold in an event's details (a
    date, a tuple) stays what was saved instead of its JSON form. Copies go in and out, so a caller
    changing a state changes nothing remembered. Bounded; shared by the stores of the process,
    which is safe because the document decides.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[str, IncidentState]] = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, fingerprint: str, blob: str, *, copy: bool = True) -> IncidentState:
        """``copy=False``: the remembered state itself, for a caller that never changes it (the
        router: ``observe`` returns a new state)."""
        known = self._items.get(fingerprint)
        if known is not None and known[0] == blob:
            return known[1].copy() if copy else known[1]
        state = decode_state(fingerprint, blob)
        self.remember(fingerprint, blob, state)
        return state

    def remember(self, fingerprint: str, blob: str, state: IncidentState, *, copy: bool = True) -> None:
        """``copy=False``: the caller hands ``state`` over and never changes it again."""
        kept = state.copy() if copy else state
        with self._lock:
            self._items[fingerprint] = (blob, kept)
            self._items.move_to_end(fingerprint)
            if len(self._items) > self.size:
                self._items.popitem(last=False)


_known = _KnownStates(8192)


outbox = sa.Table(
    "dm_alert_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False, unique=True),
    sa.Column("receiver", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(255), nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pending | delivered | dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("external_id", sa.String(255), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("ix_dm_alert_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_dm_alert_outbox_order", "receiver", "incident_id", "status"),
)

# Groups waiting out policy.group_wait (see grouping.HeldGroup): written in the router's transaction,
# so members held when a process dies are sent by the next one.
group_holds = sa.Table(
    "dm_alert_group_holds",
    metadata,
    sa.Column("receiver", sa.String(64), primary_key=True),
    sa.Column("group_key", sa.String(400), primary_key=True),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("members", sa.Text, nullable=False),  # JSON list of Notification.to_dict()
)

heartbeats = sa.Table(
    "dm_heartbeats",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("last_tick_at", sa.Float, nullable=False),
    sa.Column("last_ok_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),  # redacted; NULL when the last tick was fine
    sa.Column("interval_s", sa.Float, nullable=False),
)

# Scheduled sends that must happen once per slot (the digest): one row per (schedule, slot,
# channel). Claimed before sending, marked sent after; a failed send gives the claim back, and a
# claim older than its lease (the sender died mid-send) may be taken again.
once_sends = sa.Table(
    "dm_once_sends",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),  # sending | sent
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),  # e.g. the Message-ID
)

# Silences and acknowledgements (see :mod:`.silences`): one row each, read by the router at most once per call
# (the rows not expired and not ended; ``ends_at`` NULL: an acknowledgement). Created if missing,
# like every table here, so a state DB of an earlier version gains it on its next open.
silences = sa.Table(
    "dm_alert_silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(12), nullable=False),  # silence | ack
    sa.Column("matchers", sa.Text, nullable=False),  # JSON [[key, value], ...], ANDed
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expired_at", sa.Float, nullable=True),
    sa.Column("incident_id", sa.String(64), nullable=True),
    sa.Index("ix_dm_alert_silences_live", "expired_at", "ends_at"),
)

# Nonces of signed card links that were used (see :mod:`.actions`): the primary key makes a link
# act once, whichever of two concurrent requests commits first.
used_nonces = sa.Table(
    "dm_action_nonces",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("used_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

# (fingerprint, incident_id, receiver, ticket key, ticket url)
TicketEntry = tuple[str, str, str, str, str | None]


@dataclass(frozen=True)
class Heartbeat:
    """The last tick of one monitoring sensor, as the watchdog reads it."""

    name: str
    last_tick_at: datetime
    last_ok_at: datetime | None
    last_error: str | None
    interval_s: float


_IN_CHUNK = 500  # SQLite's bound-parameter limit is 999 on old builds


def _ts(at: datetime) -> float:
    return at.timestamp()


def _from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notification: Notification
    attempts: int
    created_at: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class OutboxUpdate:
    id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    external_id: str | None = None
    delivered_at: datetime | None = None


_PLAIN = (str, int, bool, type(None))  # floats: see _plain


def _plain(value: Any) -> bool:
    """True when ``json.loads(dump_document(value))`` is ``value`` again, of the same types."""
    cls = value.__class__
    if cls in _PLAIN:
        return True
    if cls is float:
        return math.isfinite(value)  # NaN and infinities are written as null
    if cls is dict:
        for k, v in value.items():
            if k.__class__ is not str or (v.__class__ not in _PLAIN and not _plain(v)):
                return False
        return True
    if cls is list:
        for v in value:
            if v.__class__ not in _PLAIN and not _plain(v):
                return False
        return True
    return False  # a tuple comes back a list, a date or a Decimal as text


def _round_trips(n: Notification) -> bool:
    """True when ``Notification.from_dict(json.loads(payload))`` of this notification's payload is
    equal to it in every field and of the same types (what a delivery renders would not differ).
    Written out as loops: it runs for every notification queued."""
    e, inc = n.event, n.incident
    for value in (n.key, n.receiver, e.source, e.kind, e.entity, e.summary, e.run_id, e.next_action, inc.incident_id, inc.fingerprint):
        if value.__class__ not in _PLAIN:
            return False
    if n.transition.__class__ is not Transition or n.severity.__class__ is not Severity:
        return False
    if inc.failures.__class__ is not int or inc.flaps.__class__ is not int or e.owners.__class__ is not tuple:
        return False
    for owner in e.owners:
        if owner.__class__ is not str:
            return False
    for at in (n.created_at, e.occurred_at, inc.first_failed_at, inc.last_failed_at, inc.last_success_at, inc.recovered_at):
        if at is not None and (at.__class__ is not datetime or at.tzinfo is not timezone.utc):
            return False
    if not (_plain(e.details) and _plain(e.links)):
        return False
    for ticket in inc.tickets.values():
        if ticket.__class__ is not dict or not _plain(ticket):
            return False
    for member in (*n.members, *n.also_affected) if n.members or n.also_affected else ():
        if not _round_trips(member):
            return False
    return True


class _QueuedPayloads:
    """Notifications this process just queued, by the payload written for them.

    The router delivers right after it queues, so most claimed rows are ones it wrote moments ago:
    when a claimed row's payload is exactly a remembered one, the remembered notification is the
    answer and nothing is parsed. Only notifications that come back from their payload unchanged
    are remembered (plain JSON values in ``details`` and ``links``, UTC times), so a delivery renders
    the same either way; anything else, and any row another process wrote, is decoded. Taken once
    (a retry decodes), bounded, and shared by the stores of the process: the payload decides.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Notification] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, payload: str, notification: Notification) -> None:
        if not _round_trips(notification):
            return
        with self._lock:
            self._items[payload] = notification
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def take(self, payload: str) -> Notification:
        with self._lock:
            known = self._items.pop(payload, None)
        return known if known is not None else Notification.from_dict(json.loads(payload))


_queued = _QueuedPayloads(2048)


class SqlStateStore:
    """The default (and, so far, only) store. Thread-safe; share one per process.

    Failures of the DB itself come out as :class:`~.state_health.StateStoreError` naming the
    DB; problems found and dealt with (a deleted or corrupt SQLite file) wait in
    :meth:`take_problems` for the router to report."""

    def __init__(self, url: str, *, engine: Engine | None = None, lock_timeout: float = 10.0) -> None:
        self.url = url
        self.location = describe_location(url)
        self.lock_timeout = lock_timeout
        file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") and url != "sqlite:///:memory:" else None
        self.guard = SqliteFileGuard(Path(file).expanduser()) if file and engine is None else None
        self._problems: list[StateProblem] = []
        self._restore_due = False  # a problem said the open incidents may be gone: see restore()
        self._forget_due = False  # a loss was dealt with: its note in the DB goes once it is reported
        self.losses = 0  # losses noted by this store (a new one starts its restore afresh)
        self._reopen_lock = threading.Lock()
        self._given_engine = engine
        self._silences_cache: tuple[float, list[StoredSilence]] | None = None  # (monotonic time read, rows)
        self.is_sqlite = (engine.dialect.name if engine is not None else sa.engine.make_url(url).get_backend_name()) == "sqlite"
        self._engine: Engine | None = None
        try:
            self._engine = self._open()
        except StateStoreError:  # alerting must start anyway: the first use opens it again (or raises, and is reported)
            self._engine = None

    @property
    def engine(self) -> Engine:
        """The open engine; opened again first if an earlier open failed."""
        if self._engine is None:
            with self._reopen_lock:
                if self._engine is None:
                    self._engine = self._open()
        return self._engine

    def _open(self) -> Engine:
        if self._given_engine is not None:
            metadata.create_all(self._given_engine)
            return self._given_engine
        if self.guard is not None:
            try:
                self._note(self.guard.before_open())
            except OSError as exc:
                raise StateStoreError(
                    StateProblem(
                        UNAVAILABLE, self.location, f"alert state DB {self.location} cannot be opened: {describe_error(exc)}", ongoing=True
                    )
                ) from None
        engine = self._make_engine(self.url, self.lock_timeout)
        try:
            metadata.create_all(engine)
            if self.guard is not None:
                self._note(self.guard.after_open(engine))
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise StateStoreError(classify_db_error(exc, self.location, self.lock_timeout)) from None
        return engine

    def take_problems(self, *, hold_lost: bool = False) -> list[StateProblem]:
        """Problems found since the last call (each reported once). ``hold_lost``: reports of a
        loss stay until :meth:`loss_handled` or :meth:`loss_reported` says what was done about it."""
        with self._reopen_lock:
            taken = [p for p in self._problems if not (hold_lost and p.lost)]
            self._problems = [p for p in self._problems if hold_lost and p.lost]
        return taken

    def _note(self, problems: Sequence[StateProblem]) -> None:
        self._problems.extend(problems)
        if any(p.lost for p in problems):
            self._restore_due = True
            self.losses += 1

    @property
    def restore_due(self) -> bool:
        """The DB was found deleted or corrupt (here, or by another process: see
        ``SqliteFileGuard.after_open``) and that was not dealt with yet: its open incidents may be gone."""
        return self._restore_due

    def restore(self, conn: Connection, states: Sequence[IncidentState], now: datetime) -> int:
        """Put back incidents rebuilt from elsewhere (the audit trail) after a loss, in the
        caller's transaction: only fingerprints the DB holds no row of (a state written since is
        newer). Returns how many were put back."""
        if not states:
            return 0
        ph = _placeholder(conn)
        sql = (
            f"INSERT INTO {incidents.name} (fingerprint, phase, updated_at, state) VALUES ({ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (fingerprint) DO NOTHING"
        )
        return sum(conn.exec_driver_sql(sql, (s.fingerprint, s.phase.value, _ts(now), encode_state(s))).rowcount for s in states)

    def loss_reported(self, outcome: str | None) -> None:
        """What was done about a loss (``outcome``, a sentence; None: nothing) replaces "forgotten"
        in its reports not yet taken; :attr:`restore_due` stays (a restore that failed is tried again)."""
        with self._reopen_lock:
            if outcome is not None:
                self._problems = [p.restored(outcome) if p.lost else p for p in self._problems]
            self._problems = [replace(p, lost=False) if p.lost else p for p in self._problems]  # not held any more

    def loss_handled(self, outcome: str | None) -> None:
        """:meth:`loss_reported`, and the loss is over: :attr:`restore_due` is False until the next
        one, and the note of it in the DB goes once the report was taken (:meth:`forget_loss`)."""
        self.loss_reported(outcome)
        self._restore_due = False
        self._forget_due = True

    def forget_loss(self) -> None:
        """After the report of a loss dealt with went out: its note in the DB is removed (if that
        fails it is logged, and the next start reports the loss again)."""
        if not self._forget_due or self.guard is None or self._engine is None:
            return
        try:
            self.guard.forget_loss(self._engine)
        except sa.exc.DBAPIError as exc:
            _log.warning("could not clear the note of a lost alert state DB in %s: %s", self.location, describe_error(exc))
            return
        self._forget_due = False

    def note_problem(self, problem: StateProblem) -> None:
        """A problem for the router to report with the others (e.g. incidents restored late)."""
        with self._reopen_lock:
            self._problems.append(problem)

    @staticmethod
    def _make_engine(url: str, lock_timeout: float = 10.0) -> Engine:
        if not url.startswith("sqlite"):
            return sa.create_engine(url, pool_pre_ping=True, future=True)
        engine = sa.create_engine(url, connect_args={"timeout": lock_timeout, "check_same_thread": False}, future=True)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; a driver error becomes a :class:`StateStoreError` that names the DB."""
        self._check_file()
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            problem = classify_db_error(exc, self.location, self.lock_timeout)
            if problem.kind == CORRUPT:
                self._reopen(rescue=False)  # moved aside by the next open
            raise StateStoreError(problem) from None

    def check(self) -> None:
        """Open the DB if an earlier open failed and check its file, noting what is found (a loss
        included) before a transaction is needed: the router restores first, then applies events."""
        self._check_file()
        _ = self.engine

    def _check_file(self) -> None:
        """A SQLite file deleted or replaced under us: copy it back, reopen, report (once)."""
        if self.guard is not None and self.guard.changed():
            self._reopen(rescue=True)

    def _reopen(self, *, rescue: bool) -> None:
        with self._reopen_lock:
            if self.guard is None or not (self.guard.changed() or not rescue):
                return  # another thread did it
            if rescue:
                self._note([self.guard.rescue()])
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._engine = self._open()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.guard is not None:
            self.guard.close()

    # -- incidents ---------------------------------------------------------------------------

    # The incident statements (and the outbox's insert and settle) run on every router call, so they
    # go to the driver as plain SQL (``exec_driver_sql``): SQLAlchemy's per-row parameter handling
    # cost more than SQLite itself.

    def load(self, conn: Connection, fingerprints: Iterable[str], *, copy: bool = True) -> dict[str, IncidentState]:
        """The stored states of these fingerprints; on PostgreSQL the rows stay locked
        (``FOR UPDATE``) until the transaction ends. ``copy=False``: states the caller never
        changes in place (it makes new ones, as ``observe`` does), so none is copied."""
        keys = list(dict.fromkeys(fingerprints))
        found: dict[str, IncidentState] = {}
        ph = _placeholder(conn)
        lock = "" if self.is_sqlite else " FOR UPDATE"
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            sql = f"SELECT fingerprint, state FROM {incidents.name} WHERE fingerprint IN ({', '.join([ph] * len(chunk))}){lock}"
            for fp, blob in _pairs(conn.exec_driver_sql(sql, tuple(chunk))):
                found[fp] = _known.decode(fp, blob, copy=copy)
        return found

    def save(self, conn: Connection, states: Sequence[IncidentState], now: datetime, *, hand_over: bool = False) -> None:
        """Upsert states (one per fingerprint). ``hand_over``: the caller never changes these states
        again (the router, at the end of its call), so they are remembered as they are, not copied."""
        if not states:
            return
        ph = _placeholder(conn)
        sql = (
            f"INSERT INTO {incidents.name} (fingerprint, phase, updated_at, state) VALUES ({ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (fingerprint) DO UPDATE SET phase = excluded.phase, updated_at = excluded.updated_at, state = excluded.state"
        )
        updated_at = _ts(now)
        rows = [(s.fingerprint, s.phase._value_, updated_at, encode_state(s)) for s in states]  # _value_: Enum.value is slow
        conn.exec_driver_sql(sql, rows)
        for state, (fp, _, _, blob) in zip(states, rows, strict=True):
            _known.remember(fp, blob, state, copy=not hand_over)

    def tickets_for(self, fingerprints: Iterable[str]) -> dict[str, dict[str, dict[str, str]]]:
        """fingerprint -> receiver -> {key, url, incident_id} of the current incident."""
        with self.transaction() as conn:
            states = self.load(conn, fingerprints, copy=False)  # read only: the tickets are copied
            return {fp: {r: dict(t) for r, t in s.tickets.items()} for fp, s in states.items() if s.tickets}

    def _record_tickets(self, conn: Connection, entries: Sequence[TicketEntry], now: datetime) -> None:
        """Remember tickets opened by receivers: (fingerprint, incident_id, receiver, key, url).
        A ticket of an incident that has since closed and reopened is not attached to the new one."""
        if not entries:
            return
        states = self.load(conn, [e[0] for e in entries])
        changed = []
        for fp, incident_id, receiver, key, url in entries:
            state = states.get(fp)
            if state is None or state.incident_id != incident_id:
                continue
            known = state.tickets.get(receiver, {})
            url = url or (known.get("url") if known.get("key") == key else None)
            state.tickets[receiver] = {"key": key, "url": url or "", "incident_id": incident_id}
            changed.append(state)
        self.save(conn, list({s.fingerprint: s for s in changed}.values()), now, hand_over=True)

    def in_phase(self, conn: Connection, phase: Phase, *, copy: bool = True) -> list[IncidentState]:
        sql = f"SELECT fingerprint, state FROM {incidents.name} WHERE phase = {_placeholder(conn)}"
        return [_known.decode(fp, blob, copy=copy) for fp, blob in _pairs(conn.exec_driver_sql(sql, (phase.value,)))]

    def get(self, fingerprint: str) -> IncidentState | None:
        with self.transaction() as conn:
            return self.load(conn, [fingerprint]).get(fingerprint)

    # -- outbox ------------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT (both have ``on_conflict_do_*``)."""
        if self.is_sqlite:
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def enqueue(self, conn: Connection, notifications: Sequence[Notification]) -> None:
        """Add deliveries; a key already present (a replayed decision) is ignored."""
        if not notifications:
            return
        ph = _placeholder(conn)
        sql = (
            f'INSERT INTO {outbox.name} ("key", receiver, fingerprint, incident_id, status, attempts, created_at, next_attempt_at, payload) '
            f'VALUES ({", ".join([ph] * 9)}) ON CONFLICT ("key") DO NOTHING'
        )
        rows = []
        for n in notifications:
            created_at = _ts(n.created_at)
            payload = dump_document(n.to_dict())
            rows.append((n.key, n.receiver, n.incident.fingerprint, n.incident.incident_id, PENDING, 0, created_at, created_at, payload))
        conn.exec_driver_sql(sql, rows)
        for n, row in zip(notifications, rows, strict=True):
            _queued.remember(row[-1], n)

    def claim_due(self, now: datetime, lease_until: datetime, limit: int = 1000, skip_receivers: Sequence[str] = ()) -> list[OutboxItem]:
        """Take due pending deliveries (oldest first) and lease them to this caller.

        A row waits while an older pending row of the same receiver and incident is not due
        (backing off) or leased elsewhere, so a receiver never hears "recovered" before "new".
        Other incidents, even of the same fingerprint, are not held back. ``skip_receivers``: ones
        this process is still delivering to (a worker an earlier call left running)."""
        with self.transaction() as conn:
            params: dict[str, Any] = {"now": _ts(now), "limit": limit}
            if skip_receivers:
                params["skip"] = list(skip_receivers)
            query = self._claim_query(bool(skip_receivers))
            rows = conn.execute(query, params).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            ph = _placeholder(conn)
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                sql = f"UPDATE {outbox.name} SET lease_until = {ph} WHERE id IN ({', '.join([ph] * len(chunk))})"
                conn.exec_driver_sql(sql, (_ts(lease_until), *chunk))
        return [
            OutboxItem(r.id, _queued.take(r.payload), r.attempts, _from_ts(r.created_at), r.last_error)  # type: ignore[arg-type]
            for r in rows
        ]

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one store per process; two shapes of one statement
    def _claim_query(self, skipping: bool) -> Any:
        """The claim statement, built once (building it cost ~2.5 ms a call): due, not leased,
        not behind an older pending row of the same receiver and incident."""
        now = sa.bindparam("now", type_=sa.Float)
        earlier = outbox.alias("earlier")
        blocked_by_earlier = (
            sa.select(earlier.c.id)
            .where(earlier.c.receiver == outbox.c.receiver)
            .where(earlier.c.incident_id == outbox.c.incident_id)
            .where(earlier.c.status == PENDING)
            .where(earlier.c.id < outbox.c.id)
            .where(sa.or_(earlier.c.next_attempt_at > now, sa.and_(earlier.c.lease_until.is_not(None), earlier.c.lease_until >= now)))
            .exists()
        )
        query = (
            sa.select(outbox.c.id, outbox.c.payload, outbox.c.attempts, outbox.c.created_at, outbox.c.last_error)
            .where(outbox.c.status == PENDING)
            .where(outbox.c.next_attempt_at <= now)
            .where(sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now))
            .where(~blocked_by_earlier)
            .order_by(outbox.c.id)
            .limit(sa.bindparam("limit"))
        )
        if skipping:
            query = query.where(outbox.c.receiver.not_in(sa.bindparam("skip", expanding=True)))
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        return query

    def release(self, ids: Sequence[int]) -> None:
        """Give back leased rows that were not attempted (their receiver was down this call)."""
        if not ids:
            return
        with self.transaction() as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                conn.execute(outbox.update().where(outbox.c.id.in_(list(ids[i : i + _IN_CHUNK]))).values(lease_until=None))

    def settle(self, updates: Sequence[OutboxUpdate], tickets: Sequence[TicketEntry], now: datetime) -> None:
        """Delivery outcomes and the tickets they opened, in one transaction."""
        if not updates and not tickets:
            return
        with self.transaction() as conn:
            self._apply_updates(conn, updates)
            self._record_tickets(conn, tickets, now)

    def _apply_updates(self, conn: Connection, updates: Sequence[OutboxUpdate]) -> None:
        if not updates:
            return
        ph = _placeholder(conn)
        sql = (
            f"UPDATE {outbox.name} SET status = {ph}, attempts = {ph}, next_attempt_at = {ph}, last_error = {ph}, "
            f"external_id = {ph}, delivered_at = {ph}, lease_until = NULL WHERE id = {ph}"
        )
        rows = [
            (
                u.status,
                u.attempts,
                _ts(u.next_attempt_at),
                u.last_error,
                u.external_id,
                _ts(u.delivered_at) if u.delivered_at else None,
                u.id,
            )
            for u in updates
        ]
        conn.exec_driver_sql(sql, rows)

    # -- groups held for group_wait ------------------------------------------------------------

    def held_groups(self, conn: Connection) -> dict[tuple[str, str], HeldGroup]:
        """Every group still waiting (a handful: those opened within the last ``group_wait``)."""
        rows = conn.execute(sa.select(group_holds)).all()
        groups = (
            HeldGroup(
                r.receiver,
                r.group_key,
                cast(datetime, _from_ts(r.opened_at)),
                cast(datetime, _from_ts(r.due_at)),
                [Notification.from_dict(m) for m in json.loads(r.members)],
            )
            for r in rows
        )
        return {g.slot: g for g in groups}

    def save_held_groups(self, conn: Connection, held: Sequence[HeldGroup], released: Sequence[tuple[str, str]]) -> None:
        """Store groups that are (still) waiting and drop the ones just sent, in the caller's transaction."""
        for receiver, key in released:
            conn.execute(group_holds.delete().where(group_holds.c.receiver == receiver).where(group_holds.c.group_key == key))
        if not held:
            return
        insert = self._insert(group_holds)
        rows = [
            {
                "receiver": g.receiver,
                "group_key": g.key,
                "opened_at": _ts(g.opened_at),
                "due_at": _ts(g.due_at),
                "members": dump_document([m.to_dict() for m in g.members]),
            }
            for g in held
        ]
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[group_holds.c.receiver, group_holds.c.group_key], set_={"members": insert.excluded.members}
            ),
            rows,
        )

    # -- heartbeats (who watches the watchers) --------------------------------------------------

    def record_heartbeat(self, name: str, at: datetime, interval_s: float, error: str | None = None) -> None:
        insert = self._insert(heartbeats)
        values = {"name": name, "last_tick_at": _ts(at), "last_error": error, "interval_s": interval_s}
        update = {
            "last_tick_at": insert.excluded.last_tick_at,
            "last_error": insert.excluded.last_error,
            "interval_s": insert.excluded.interval_s,
        }
        if error is None:
            values["last_ok_at"] = _ts(at)
            update["last_ok_at"] = insert.excluded.last_ok_at
        with self.transaction() as conn:
            conn.execute(insert.values(**values).on_conflict_do_update(index_elements=[heartbeats.c.name], set_=update))

    def heartbeats(self) -> list[Heartbeat]:
        with self.transaction() as conn:
            rows = conn.execute(sa.select(heartbeats).order_by(heartbeats.c.name)).all()
        return [
            Heartbeat(r.name, _from_ts(r.last_tick_at), _from_ts(r.last_ok_at), r.last_error, r.interval_s)  # type: ignore[arg-type]
            for r in rows
        ]

    # -- once per slot (the digest) -------------------------------------------------------------

    def claim_once(self, key: str, now: datetime, lease: float = 600.0) -> bool:
        """True when this caller may send ``key`` now: never claimed, or claimed by a sender that
        neither finished nor gave it back within ``lease`` seconds. False once it was sent."""
        with self.transaction() as conn:
            row = conn.execute(sa.select(once_sends.c.status, once_sends.c.claimed_at).where(once_sends.c.key == key)).first()
            if row is None:
                inserted = conn.execute(
                    self._insert(once_sends).values(key=key, status="sending", claimed_at=_ts(now)).on_conflict_do_nothing()
                )
                return inserted.rowcount == 1  # 0: another sender claimed it between the select and the insert
            if row.status == "sent" or row.claimed_at > _ts(now) - lease:
                return False
            conn.execute(sa.update(once_sends).where(once_sends.c.key == key).values(claimed_at=_ts(now)))
            return True

    def finish_once(self, key: str, now: datetime, *, sent: bool, detail: str | None = None) -> None:
        """Mark ``key`` sent, or give the claim back so the next attempt sends it."""
        with self.transaction() as conn:
            if sent:
                conn.execute(sa.update(once_sends).where(once_sends.c.key == key).values(status="sent", sent_at=_ts(now), detail=detail))
            else:
                conn.execute(sa.delete(once_sends).where(once_sends.c.key == key))

    # -- silences and acknowledgements ------------------------------------------------------------

    def live_silences(self, conn: Connection, now: datetime, *, max_age: float = 0.0) -> list[StoredSilence]:
        """Silences and acknowledgements not expired and not ended (one query). ``max_age`` > 0:
        rows read by this store less than that many seconds ago are answered again without a query
        (the router's per call: a silence another process makes applies within ``max_age``; one
        made or ended through this store applies at once). Callers filter by ``now`` themselves."""
        cached = self._silences_cache
        if max_age > 0 and cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        read_at = time.monotonic()
        sql = (
            f"SELECT id, kind, matchers, author, comment, starts_at, ends_at, created_at, expired_at, incident_id "
            f"FROM {silences.name} WHERE expired_at IS NULL AND (ends_at IS NULL OR ends_at > {_placeholder(conn)})"
        )
        rows = [_silence(row) for row in conn.exec_driver_sql(sql, (_ts(now),)).all()]
        self._silences_cache = (read_at, rows)
        return rows

    def add_silence(self, silence: StoredSilence, conn: Connection | None = None) -> StoredSilence:
        self._silences_cache = None
        row = {
            "id": silence.id,
            "kind": silence.kind,
            "matchers": to_json(matchers_json(silence.matchers)),
            "author": silence.author,
            "comment": silence.comment,
            "starts_at": _ts(silence.starts_at),
            "ends_at": _ts(silence.ends_at) if silence.ends_at else None,
            "created_at": _ts(silence.created_at),
            "expired_at": None,
            "incident_id": silence.incident_id,
        }
        if conn is not None:
            conn.execute(silences.insert().values(**row))
        else:
            with self.transaction() as own:
                own.execute(silences.insert().values(**row))
        return silence

    def list_silences(self, now: datetime, *, include_ended: bool = False) -> list[StoredSilence]:
        query = sa.select(silences).order_by(silences.c.created_at, silences.c.id)
        if not include_ended:
            query = query.where(silences.c.expired_at.is_(None)).where(sa.or_(silences.c.ends_at.is_(None), silences.c.ends_at > _ts(now)))
        with self.transaction() as conn:
            return [_silence(tuple(r)) for r in conn.execute(query).all()]

    def expire_silences(self, ids: Sequence[str], now: datetime, conn: Connection | None = None) -> list[str]:
        """End these silences / acknowledgements now; returns the ids that were live."""
        if not ids:
            return []
        self._silences_cache = None
        stmt = silences.update().where(silences.c.id.in_(list(ids))).where(silences.c.expired_at.is_(None)).values(expired_at=_ts(now))
        live = sa.select(silences.c.id).where(silences.c.id.in_(list(ids))).where(silences.c.expired_at.is_(None))
        if conn is not None:
            found = [r[0] for r in conn.execute(live).all()]
            conn.execute(stmt)
            return found
        with self.transaction() as own:
            found = [r[0] for r in own.execute(live).all()]
            own.execute(stmt)
        return found

    def acknowledge(self, ack: StoredSilence, conn: Connection) -> None:
        """Store an acknowledgement, ending earlier ones of the same fingerprint."""
        assert ack.kind == ACK and ack.fingerprint
        self._silences_cache = None
        earlier = (
            silences.update()
            .where(silences.c.kind == ACK)
            .where(silences.c.expired_at.is_(None))
            .where(silences.c.matchers == to_json(matchers_json(ack.matchers)))
            .values(expired_at=_ts(ack.created_at))
        )
        conn.execute(earlier)
        self.add_silence(ack, conn)

    def use_nonce(self, conn: Connection, nonce: str, action: str, now: datetime, expires_at: datetime) -> bool:
        """Record a link's nonce as used; False when it was used before (this request must not act).
        Atomic: of two concurrent requests, one inserts and the other finds the row. Nonces of links
        past their expiry are dropped (an expired link is refused before its nonce is looked at)."""
        conn.execute(used_nonces.delete().where(used_nonces.c.expires_at < _ts(now)))
        result = conn.execute(
            self._insert(used_nonces)
            .values(nonce=nonce, action=action, used_at=_ts(now), expires_at=_ts(expires_at))
            .on_conflict_do_nothing(index_elements=[used_nonces.c.nonce])
            .returning(used_nonces.c.nonce)
        )
        return result.first() is not None  # rowcount is not reliable for ON CONFLICT on every driver

    def outbox_counts(self) -> dict[str, int]:
        with self.transaction() as conn:
            rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)).all()
        return {str(status): cast(int, count) for status, count in rows}

    def outbox_rows(self, status: str | None = None) -> list[dict]:
        """For the CLI and tests: the outbox as plain dicts (payloads carry no secrets)."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if status:
            query = query.where(outbox.c.status == status)
        with self.transaction() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _silence(row: Sequence[Any]) -> StoredSilence:
    id_, kind, matchers, author, comment, starts_at, ends_at, created_at, expired_at, incident_id = row
    return StoredSilence(
        id_,
        kind,
        matchers_from_json(json.loads(matchers)),
        author,
        comment,
        _from_ts(starts_at),  # type: ignore[arg-type]
        _from_ts(ends_at),
        _from_ts(created_at),  # type: ignore[arg-type]
        _from_ts(expired_at),
        incident_id,
    )
