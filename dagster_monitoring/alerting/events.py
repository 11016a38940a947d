"""The one event vocabulary every source is adapted into.

Sensors, dbt and dlt code turn what they saw into an :class:`AlertEvent`; everything downstream
(lifecycle, routing, transports, audit) only ever sees this plain object, which is why the alert
core never needs to import Dagster.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

FINGERPRINT_MAX_LEN = 255  # PagerDuty's dedup_key limit; also fits a VARCHAR(255) key column.
ORIGINAL_SEVERITY_TAG = "dagster-monitoring/original_severity"  # set when the router escalates an event


class Severity(str, enum.Enum):
    """How loud an event is. Ordered: WARN < ERROR < CRITICAL."""

    WARN = "warn"
    ERROR = "error"
    CRITICAL = "critical"

    # Ranks are looked up by the plain value: an Enum member hashes through Python code, and the
    # router compares severities several times per event.
    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self._value_]

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Severity):
            return NotImplemented
        return _SEVERITY_RANK[self._value_] < _SEVERITY_RANK[other._value_]

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Severity):
            return NotImplemented
        return _SEVERITY_RANK[self._value_] <= _SEVERITY_RANK[other._value_]

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Severity):
            return NotImplemented
        return _SEVERITY_RANK[self._value_] > _SEVERITY_RANK[other._value_]

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Severity):
            return NotImplemented
        return _SEVERITY_RANK[self._value_] >= _SEVERITY_RANK[other._value_]

    @classmethod
    def parse(cls, value: Severity | str) -> Severity:
        if isinstance(value, Severity):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown severity {value!r}; expected one of {[s.value for s in cls]}") from None


_SEVERITY_RANK = {"warn": 0, "error": 1, "critical": 2}
_SEVERITY_OF = {s.value: s for s in Severity}  # exact values, as stored; Severity.parse takes the rest


class Status(str, enum.Enum):
    """What the source reports now. A PASSING event resolves the FAILING one with the same fingerprint."""

    FAILING = "failing"
    PASSING = "passing"


_STATUS_OF = {s.value: s for s in Status}


_UTC = timezone.utc


def _require_aware(name: str, value: datetime) -> datetime:
    if value.__class__ is datetime and value.tzinfo is _UTC:
        return value  # the common case, already normalised
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


# ``isoformat()`` of UTC times, remembered (bounded): every notification is written as JSON twice
# (its outbox row, then what a receiver renders) and a router call's notifications share times.
# Only exact UTC datetimes, so equal keys always have the same text.
_ISO: dict[datetime, str] = {}


def iso(at: datetime) -> str:
    """``at.isoformat()``."""
    if at.tzinfo is not _UTC or at.__class__ is not datetime:
        return at.isoformat()
    text = _ISO.get(at)
    if text is None:
        if len(_ISO) >= 16384:
            _ISO.clear()
        text = _ISO[at] = at.isoformat()
    return text


def short_hash(text: str, length: int = 12) -> str:
    """Stable short id for transports that need one (Jira label, ServiceNow correlation_id)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def make_fingerprint(source: str, kind: str, entity: str) -> str:
    """``source:kind:entity``, capped at 255 chars; an over-long entity keeps a hash of the rest."""
    fp = f"{source}:{kind}:{entity}"
    if len(fp) <= FINGERPRINT_MAX_LEN:
        return fp
    digest = short_hash(fp, 16)
    return f"{fp[: FINGERPRINT_MAX_LEN - len(digest) - 1]}~{digest}"


@dataclass(frozen=True)
class AlertEvent:
    """Something a source observed about one entity, at one moment.

    ``details`` holds free-form context such as the offending value, the error class and
    message; transports render it, redacted and truncated. ``links`` maps a label ("run",
    "asset_check", "dbt_artifacts", "runbook") to a URL.
    """

    source: str
    kind: str
    entity: str
    status: Status
    severity: Severity
    occurred_at: datetime
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    next_action: str | None = None
    # Derived, set once in __post_init__: the router asks for it at every step.
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in (("source", self.source), ("kind", self.kind), ("entity", self.entity)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"AlertEvent.{name} must be a non-empty string, got {value!r}")
        set_ = object.__setattr__
        status, severity = self.status, self.severity
        if status.__class__ is not Status:  # a stored value ("failing") is looked up, anything else converted
            set_(self, "status", (_STATUS_OF.get(status) if isinstance(status, str) else None) or Status(status))
        if severity.__class__ is not Severity:
            set_(self, "severity", (_SEVERITY_OF.get(severity) if isinstance(severity, str) else None) or Severity.parse(severity))
        set_(self, "occurred_at", _require_aware("AlertEvent.occurred_at", self.occurred_at))
        if self.owners.__class__ is not tuple:
            set_(self, "owners", tuple(self.owners))
        set_(self, "details", dict(self.details))
        set_(self, "tags", {str(k): str(v) for k, v in self.tags.items()} if self.tags else {})
        set_(self, "links", dict(self.links))
        set_(self, "fingerprint", make_fingerprint(self.source, self.kind, self.entity))

    @property
    def fingerprint_hash(self) -> str:
        return short_hash(self.fingerprint)

    @property
    def is_failing(self) -> bool:
        return self.status is Status.FAILING

    def with_severity(self, severity: Severity) -> AlertEvent:
        """The event raised (escalated) to ``severity``; the source's own severity is kept in a tag
        so an escalation can say "from WARN to ERROR"."""
        original = self.tags.get(ORIGINAL_SEVERITY_TAG, self.severity.value)
        return replace(self, severity=severity, tags={**self.tags, ORIGINAL_SEVERITY_TAG: original})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, one key per field (written out, enum values read as ``_value_``: ``dataclasses.fields``
        and the ``Enum.value`` property are slow per event)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "entity": self.entity,
            "status": self.status._value_,
            "severity": self.severity._value_,
            "occurred_at": iso(self.occurred_at),
            "summary": self.summary,
            "details": self.details,
            "owners": list(self.owners),
            "tags": self.tags,
            "links": self.links,
            "run_id": self.run_id,
            "next_action": self.next_action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        kwargs = dict(data)
        kwargs["occurred_at"] = datetime.fromisoformat(kwargs["occurred_at"])
        kwargs["owners"] = tuple(kwargs.get("owners") or ())
        return cls(**kwargs)
