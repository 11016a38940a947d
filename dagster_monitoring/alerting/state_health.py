"""When the alert state DB itself breaks: say what happened, name the file, keep alerting.

The state DB is the monitoring's memory (open incidents, the outbox). Losing it silently is the
worst outcome: incidents are forgotten and their recoveries never announced. This module turns
each way it breaks into a plain :class:`StateProblem` the router reports through its fallback
path (which needs no state), and, for the SQLite default, guards the file:

* a marker file next to the DB (``alert_state.db.id``) holds the DB's id, so a DB that is missing
  at start-up while its marker is there was **deleted**, and one whose id differs was **replaced**;
* the file's inode is checked before each transaction, so a DB **deleted while running** is
  noticed at once instead of pooled connections writing on into an unlinked file; a connection
  kept open on the old inode copies it back (``VACUUM INTO``), so nothing is lost;
* a file that is **not a database** (corrupt) is moved aside, named in the report, and a new one
  is started, so alerting goes on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from .redact import describe_error, get_logger, redact_url

_log = get_logger(__name__)

# kinds of problem; the fallback alert's entity is "<kind> <location>"
DELETED, REPLACED, CORRUPT, LOCKED, UNAVAILABLE = "deleted", "replaced", "corrupt", "locked", "unavailable"
RESTORED = "restored"  # a lost DB's incidents came back from the audit trail after a failed first try
# What a lost DB means, said in every report of one; replaced by what restoring them did (see
# :meth:`StateProblem.restored`) when the router can rebuild them from the audit trail.
FORGOTTEN = "Open incidents it held are forgotten: their recoveries will not be announced."
CORRUPT_MARKERS = ("file is not a database", "database disk image is malformed", "malformed database schema")


@dataclass(frozen=True)
class StateProblem:
    """Something a human must hear about the state DB. ``ongoing``: it still stops alerting
    (locked, unreachable); otherwise it was dealt with and alerting goes on (deleted, corrupt).
    ``lost``: the open incidents the DB held may be gone (the router restores what it can)."""

    kind: str
    location: str  # the file path, or the URL without its password
    message: str
    ongoing: bool = False
    lost: bool = False

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.location}"

    def restored(self, outcome: str) -> StateProblem:
        """The same report saying what restoring the incidents did instead of that they are forgotten."""
        if FORGOTTEN in self.message:
            return replace(self, message=self.message.replace(FORGOTTEN, outcome))
        return replace(self, message=f"{self.message} {outcome}")


class StateStoreError(RuntimeError):
    """The alert state DB cannot be used right now; the message names it and says what to do."""

    def __init__(self, problem: StateProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def describe_location(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return redact_url(url)


def classify_db_error(exc: BaseException, location: str, lock_timeout: float) -> StateProblem:
    """A driver error as a problem that names the DB (SQLAlchemy's own text names neither)."""
    text = str(getattr(exc, "orig", None) or exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StateProblem(
            LOCKED,
            location,
            f"alert state DB {location} is locked by another process (waited {lock_timeout:g}s): {text}. "
            "Alerts are kept and retried on the next tick; find the process holding it (e.g. `fuser`).",
            ongoing=True,
        )
    if any(marker in lowered for marker in CORRUPT_MARKERS):
        return StateProblem(
            CORRUPT,
            location,
            f"alert state DB {location} is corrupt ({text}); it is moved aside and a new one started on the next tick.",
            ongoing=True,
        )
    return StateProblem(
        UNAVAILABLE,
        location,
        f"alert state DB {location} is unavailable: {describe_error(exc)}. Alerts are kept and retried on the next tick.",
        ongoing=True,
    )


class SqliteFileGuard:
    """The identity of one SQLite state file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marker = path.with_name(path.name + ".id")
        self._identity: tuple[int, int] | None = None
        self._anchor: sqlite3.Connection | None = None  # holds the inode open, for a rescue
        self._expect_new = False
        self._lost: StateProblem | None = None  # a loss before_open found, for after_open to write down

    # -- at open -----------------------------------------------------------------------------

    def before_open(self) -> list[StateProblem]:
        """Quarantine a corrupt file; report a DB that vanished since it was last seen."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problems = []
        if self.path.exists() and not _is_sqlite(self.path):
            aside = self._quarantine()
            problems.append(
                StateProblem(
                    CORRUPT,
                    str(self.path),
                    f"alert state DB {self.path} was not a readable SQLite database; it was moved to {aside} and a new "
                    f"one started. {FORGOTTEN}",
                    lost=True,
                )
            )
        elif not self.path.exists() and self.marker.exists():
            problems.append(
                StateProblem(
                    DELETED,
                    str(self.path),
                    f"alert state DB {self.path} was missing (deleted?) and was created again. {FORGOTTEN} "
                    "Check vw_open_alerts in the audit trail.",
                    lost=True,
                )
            )
        self._expect_new = bool(problems)  # a fresh DB after these: a new id is no news
        self._lost = next((p for p in problems if p.lost), None)
        return problems

    def after_open(self, engine: sa.Engine) -> list[StateProblem]:
        """Record the DB's id in the marker (or compare with it), and pin the inode. A loss found
        at this open is written into the new DB (``dm_meta``), and one that another process found
        (a CLI that opened the file first, a process that died before restoring) is read back:
        the process that restores and reports it need not be the one that found it."""
        store_id = _store_id(engine)
        problems = self._carry_loss(engine)
        known = self.marker.read_text(encoding="utf-8").strip() if self.marker.exists() else None
        if known and known != store_id and not self._expect_new:
            problems.append(
                StateProblem(
                    REPLACED,
                    str(self.path),
                    f"alert state DB {self.path} is not the one this monitoring last used (id {store_id}, expected "
                    f"{known}): it was replaced or restored from a backup. Incidents may be missing or stale.",
                )
            )
        if known != store_id:
            tmp = self.marker.with_name(self.marker.name + ".tmp")
            tmp.write_text(store_id + "\n", encoding="utf-8")
            tmp.replace(self.marker)
        self._pin()
        return problems

    def _carry_loss(self, engine: sa.Engine) -> list[StateProblem]:
        lost, self._lost = self._lost, None
        with engine.begin() as conn:
            if lost is not None:
                value = json.dumps([lost.kind, lost.message])
                conn.execute(meta.delete().where(meta.c.key == LOSS_KEY))
                conn.execute(meta.insert().values(key=LOSS_KEY, value=value))
                return []
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == LOSS_KEY)).scalar()
        if not found:
            return []
        kind, message = json.loads(found)
        return [StateProblem(kind, str(self.path), message, lost=True)]

    @staticmethod
    def forget_loss(engine: sa.Engine) -> None:
        """The loss written down at open was dealt with (restored, or reported as forgotten)."""
        with engine.begin() as conn:
            conn.execute(meta.delete().where(meta.c.key == LOSS_KEY))

    def _pin(self) -> None:
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        if self._anchor is not None:
            self._anchor.close()
        self._anchor = sqlite3.connect(self.path, check_same_thread=False)
        self._anchor.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file (and its WAL)

    def _quarantine(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        self.path.replace(aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                extra.replace(aside.with_name(aside.name + suffix))
        return aside

    # -- while running -----------------------------------------------------------------------

    def changed(self) -> bool:
        """The path no longer names the file we opened (deleted, moved, replaced)."""
        if self._identity is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def rescue(self) -> StateProblem:
        """Called when :meth:`changed`: copy the DB we still hold open back to its path."""
        where = self.path
        anchor, self._anchor = self._anchor, None
        try:
            if anchor is None:
                raise RuntimeError("no open connection to copy from")
            where.parent.mkdir(parents=True, exist_ok=True)
            if where.exists():  # something else now sits at the path: keep it, next to ours
                where = where.with_name(f"{where.name}.rescued-{uuid.uuid4().hex[:6]}")
            anchor.execute("VACUUM INTO ?", (str(where),))
        except Exception as exc:
            _log.error("could not rescue alert state DB %s: %s", self.path, describe_error(exc))
            return StateProblem(
                DELETED,
                str(self.path),
                f"alert state DB {self.path} was deleted while the monitoring was running and could not be copied back "
                f"({describe_error(exc)}); a new one was started. {FORGOTTEN}",
                lost=True,
            )
        finally:
            if anchor is not None:
                anchor.close()
        if where != self.path:
            return StateProblem(
                REPLACED,
                str(self.path),
                f"alert state DB {self.path} was replaced while the monitoring was running; the state it held was saved "
                f"to {where} and the new file is used from now on.",
            )
        return StateProblem(
            DELETED,
            str(self.path),
            f"alert state DB {self.path} was deleted while the monitoring was running; it was copied back from the "
            "open connection, so no incident was lost. Find out what deleted it.",
        )

    def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None


def _is_sqlite(path: Path) -> bool:
    if path.stat().st_size == 0:
        return True  # an empty file is a new database to SQLite
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False


meta = sa.Table(
    "dm_meta",
    sa.MetaData(),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


LOSS_KEY = "lost"  # dm_meta: a loss found at open and not dealt with yet, as JSON [kind, message]


def _store_id(engine: sa.Engine) -> str:
    meta.create(engine, checkfirst=True)
    with engine.begin() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "store_id")).scalar()
        if found:
            return str(found)
        new = uuid.uuid4().hex
        conn.execute(meta.insert().values(key="store_id", value=new))
        return new
