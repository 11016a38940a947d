"""Secrets never leave the process.

Config registers every secret it loads (webhook URLs, passwords, tokens). Transports pass every
error text through :func:`redact` before returning it, and every logger of this package carries
:class:`SecretFilter`, so a secret that slips into a message is masked before any handler sees it.
A webhook URL is registered with its parts (path, query, query values) because HTTP libraries
quote URLs piecemeal in their errors ("Max retries exceeded with url: /path?sig=...").
Text that merely looks like a credential is masked too, registered or not (an error or a check
description quoting ``password=...``, a URL's password, a bearer token, a Teams webhook URL).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
_MIN_PART = 6  # shorter fragments ("/", "v1") are not secret and would mangle text

# (what stays, the secret after it): the value of a secret-named key (``password=x``, ``"token": "x"``),
# a URL's password (``//user:x@host``), a bearer token, the path of a Teams Incoming Webhook URL.
_SECRET_SHAPES = (
    re.compile(
        r"""(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|sig)["']?\s*[=:]\s*["']?)"""
        r"""(?!\*\*\*)[^\s&"',;<>]+"""
    ),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]{0,30}://[^\s/:@]+:)(?!\*\*\*@)[^\s/@]+(?=@)"),
    re.compile(r"(?i)(\bbearer\s+)(?!\*\*\*)[\w.~+/=-]{8,}"),
    re.compile(r"(?i)(\.webhook\.office\.com/|\boutlook\.office\.com/webhook/|\bhooks\.slack\.com/)(?!\*\*\*)[^\s\"'<>)]+"),
    re.compile(r"()\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # an AWS access key id
)

_lock = threading.Lock()
_secrets: set[str] = set()
# redact() is pure for a given set of secrets, and cards repeat the same short texts (entity,
# summary, error class) for every delivery: answers are remembered until a secret is registered
# or cleared (the generation guards against an answer computed with the secrets of before).
_memo: dict[str, str] = {}
_MEMO_SIZE = 4096
_MEMO_MAX_TEXT = 1000  # long texts (stack traces) are rarely repeated; not worth the memory
_generation = 0


def _forget_answers() -> None:
    """Under ``_lock``: the set of secrets changed."""
    global _generation
    _generation += 1
    _memo.clear()


def register_secret(value: str | None) -> None:
    """Remember a secret (and, for URLs, its identifying parts) so it is masked everywhere."""
    if not value:
        return
    parts = {value}
    if "://" in value:
        split = urlsplit(value)
        if split.path and len(split.path) >= _MIN_PART:
            parts.add(split.path)
        if split.query:
            parts.add(split.query)
            parts.add(f"{split.path}?{split.query}")
            parts.update(v for _, v in parse_qsl(split.query) if len(v) >= _MIN_PART)
        if split.password:
            parts.add(split.password)
    parts |= {quote(p, safe="") for p in list(parts)}
    with _lock:
        _secrets.update(p for p in parts if len(p) >= _MIN_PART or p == value)
        _forget_answers()


def redact(text: object) -> str:
    """``text`` as a string with every registered secret masked (longest first), then anything
    shaped like a credential (:data:`_SECRET_SHAPES`)."""
    original = out = str(text)
    known = _memo.get(out)
    if known is not None:
        return known
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
        generation = _generation
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    for shape in _SECRET_SHAPES:
        out = shape.sub(_mask_match, out)
    if len(original) <= _MEMO_MAX_TEXT:
        with _lock:
            if generation == _generation:
                if len(_memo) >= _MEMO_SIZE:
                    _memo.clear()
                _memo[original] = out
    return out


def _mask_match(match: re.Match[str]) -> str:
    return match.group(1) + MASK


def redact_url(url: str) -> str:
    """Scheme and host only: enough to tell which endpoint failed, nothing that grants access."""
    split = urlsplit(url)
    host = split.hostname or "?"
    port = f":{split.port}" if split.port else ""
    return f"{split.scheme}://{host}{port}/{MASK}" if split.scheme else MASK


def describe_error(exc: BaseException) -> str:
    """``ExceptionClass: message`` with secrets masked; what transports return and log."""
    return redact(f"{type(exc).__name__}: {exc}")


class SecretFilter(logging.Filter):
    """Masks registered secrets in a record's message and arguments before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # pragma: no cover - a broken format string; leave it to logging
            return True
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = None
            record.exc_info = None
            record.msg = f"{record.msg} [{describe_error(exc)}]"
        return True


_filter = SecretFilter()
# HTTP libraries log request lines (path and query included) at DEBUG; mask those too.
THIRD_PARTY_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests")


def get_logger(name: str) -> logging.Logger:
    """A logger of this package with the secret filter attached."""
    logger = logging.getLogger(name)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return logger


def protect_third_party_loggers() -> None:
    """Attach the secret filter to the loggers of the HTTP stack the transports use."""
    for name in THIRD_PARTY_LOGGERS:
        get_logger(name)


def clear_registered_secrets() -> None:
    """For tests."""
    with _lock:
        _secrets.clear()
        _forget_answers()
