"""Webhook signatures: is this body what the source signed with our shared secret?

Fivetran and dbt Cloud both sign the raw request body with HMAC-SHA256 under the webhook's
secret and send the hex digest in a header: Fivetran in ``X-Fivetran-Signature-256`` (upper-case
hex), dbt Cloud in ``Authorization`` (lower-case hex, no scheme). The digest is compared in
constant time, case-insensitively, and over the raw bytes only: a body re-serialised from parsed
JSON would not match. Nothing here logs, and no error text carries the secret or the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

FIVETRAN_SIGNATURE_HEADER = "X-Fivetran-Signature-256"
DBT_CLOUD_SIGNATURE_HEADER = "Authorization"
MAX_BODY_BYTES = 1 << 20  # both sources send a few hundred bytes; a megabyte is plenty of headroom


class WebhookRejected(Exception):
    """A webhook the receiver refuses; ``status`` is the HTTP answer (401 signature, 400 body).
    The message is safe to return and log: it never holds the secret, the digest or the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sign(secret: str, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of ``body`` under ``secret`` (what the sources send)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the HMAC-SHA256 of ``body`` under ``secret``. Accepts upper- or
    lower-case hex and an optional ``sha256=`` prefix; an empty secret or signature never verifies."""
    if not secret or not signature:
        return False
    given = signature.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii", "replace"))


def check_signature(secret: str, body: bytes, headers: Mapping[str, str], header: str) -> None:
    """Raise :class:`WebhookRejected` (401) unless ``headers[header]`` signs ``body``."""
    value = headers.get(header) if header in headers else headers.get(header.lower())
    if not value:
        raise WebhookRejected(401, f"missing {header} signature")
    if not verify_signature(secret, body, value):
        raise WebhookRejected(401, f"bad {header} signature")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, else :class:`WebhookRejected` (400)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    return data
