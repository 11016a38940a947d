"""Secret-looking text that was never registered: values read from a warehouse, database errors.

:func:`~.redact.redact` masks the secrets the config loaded. Text from elsewhere (a sampled
failing row, a warehouse driver's error) can hold credentials nobody registered; these patterns
catch the common shapes: ``password=...`` / ``token: ...`` pairs, ``Bearer`` tokens, a URL's
``user:password@``, Teams/Logic Apps webhook URLs and signed query strings, AWS access keys.
"""

from __future__ import annotations

import re

from .redact import MASK, redact

_PATTERNS = [
    # key=value / key: value pairs whose key names a secret
    (
        re.compile(r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|sig)\s*[=:]\s*)[^\s&;,'\"]+"),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), rf"\1:{MASK}@"),  # scheme://user:password@
    (re.compile(r"(?i)https?://[^\s/]*(?:webhook\.office\.com|logic\.azure\.com|hooks\.slack\.com)[^\s'\"<>]*"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
]


def redact_patterns(text: object) -> str:
    """``text`` with registered secrets and secret-looking values masked."""
    out = redact(text)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out
