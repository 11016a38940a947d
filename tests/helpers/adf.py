"""Is this valid Atlassian Document Format? Two checks, used by the fake Jira.

1. A structural validator for the subset Jira renders everywhere (doc / paragraph / heading /
   bulletList / listItem / codeBlock / text with strong, em, code and link marks), with errors
   that name the path of the offending node. Stricter than the schema where Jira is stricter in
   practice: no empty text nodes, no empty lists, headings level 1-6, links with an http(s) href.
2. The official JSON schema (``schemas/adf_v1_full.json``, from ``@atlaskit/adf-schema``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).parent / "schemas" / "adf_v1_full.json"

BLOCKS = {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "rule"}
LIST_ITEM_CHILDREN = {"paragraph", "bulletList", "orderedList", "codeBlock"}
INLINE = {"text", "hardBreak"}
MARKS = {"strong", "em", "code", "link", "strike", "underline"}


def adf_problems(doc: Any) -> list[str]:
    """Empty list: a valid document of the subset."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return [f"ADF document must be an object, got {type(doc).__name__}"]
    if doc.get("type") != "doc" or doc.get("version") != 1:
        problems.append("root must be {type: doc, version: 1}")
    extra = set(doc) - {"type", "version", "content"}
    if extra:
        problems.append(f"doc: unknown keys {sorted(extra)}")
    content = doc.get("content")
    if not isinstance(content, list):
        return problems + ["doc.content must be a list"]
    for i, node in enumerate(content):
        _block(node, f"doc.content[{i}]", BLOCKS, problems)
    return problems


def _block(node: Any, path: str, allowed: set[str], problems: list[str]) -> None:
    if not isinstance(node, dict) or "type" not in node:
        problems.append(f"{path}: not a node")
        return
    kind = node["type"]
    if kind not in allowed:
        problems.append(f"{path}: {kind!r} not allowed here (allowed: {sorted(allowed)})")
        return
    children = node.get("content", [])
    if not isinstance(children, list):
        problems.append(f"{path}.content must be a list")
        return
    if kind == "heading":
        level = (node.get("attrs") or {}).get("level")
        if not isinstance(level, int) or not 1 <= level <= 6:
            problems.append(f"{path}: heading needs attrs.level 1-6, got {level!r}")
    if kind in ("paragraph", "heading"):
        for i, child in enumerate(children):
            _inline(child, f"{path}.content[{i}]", problems, marks_allowed=True)
    elif kind == "codeBlock":
        for i, child in enumerate(children):
            _inline(child, f"{path}.content[{i}]", problems, marks_allowed=False)
    elif kind in ("bulletList", "orderedList"):
        if not children:
            problems.append(f"{path}: a list needs at least one listItem")
        for i, item in enumerate(children):
            ipath = f"{path}.content[{i}]"
            if not isinstance(item, dict) or item.get("type") != "listItem":
                problems.append(f"{ipath}: lists hold listItem nodes only")
                continue
            if not item.get("content"):
                problems.append(f"{ipath}: an empty listItem")
            for j, child in enumerate(item.get("content", [])):
                _block(child, f"{ipath}.content[{j}]", LIST_ITEM_CHILDREN, problems)
    elif kind == "rule" and children:
        problems.append(f"{path}: rule has no content")


def _inline(node: Any, path: str, problems: list[str], *, marks_allowed: bool) -> None:
    if not isinstance(node, dict) or node.get("type") not in INLINE:
        problems.append(f"{path}: expected an inline node (text, hardBreak), got {node!r:.80}")
        return
    if node["type"] == "hardBreak":
        return
    value = node.get("text")
    if not isinstance(value, str) or not value:
        problems.append(f"{path}: text nodes need a non-empty string")
    extra = set(node) - {"type", "text", "marks"}
    if extra:
        problems.append(f"{path}: unknown keys {sorted(extra)}")
    marks = node.get("marks", [])
    if marks and not marks_allowed:
        problems.append(f"{path}: no marks allowed in a codeBlock")
    kinds = [m.get("type") for m in marks if isinstance(m, dict)]
    for mark in marks:
        if not isinstance(mark, dict) or mark.get("type") not in MARKS:
            problems.append(f"{path}: unknown mark {mark!r:.60}")
        elif mark["type"] == "link":
            href = (mark.get("attrs") or {}).get("href")
            if not isinstance(href, str) or not href.startswith(("http://", "https://")):
                problems.append(f"{path}: link mark needs attrs.href http(s), got {href!r}")
    if "code" in kinds and set(kinds) - {"code", "link"}:
        problems.append(f"{path}: the code mark combines only with link")


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def schema_problems(doc: Any) -> list[str]:
    """Problems found by the official ADF JSON schema."""
    return [f"ADF schema: {e.message[:300]}" for e in _validator().iter_errors(doc)]
