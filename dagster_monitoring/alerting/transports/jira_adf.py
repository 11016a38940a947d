"""Atlassian Document Format (ADF) for Jira Cloud, and the same document as wiki text for Data Center.

Jira Cloud REST v3 takes descriptions and comments only as ADF (a JSON tree: ``doc`` → blocks →
inline ``text`` nodes with marks); Data Center's REST v2 takes wiki markup strings. Building the
tree once and rendering it to wiki text keeps one source for both. Only the node types Jira renders
everywhere are used: heading, paragraph, bulletList/listItem, codeBlock, text with strong/code/link.
ADF refuses empty text nodes, so every builder drops empty strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._ticket import TicketText

Node = dict[str, Any]


def text(value: str, *marks: Node) -> Node:
    node: Node = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def strong() -> Node:
    return {"type": "strong"}


def link(href: str) -> Node:
    return {"type": "link", "attrs": {"href": href}}


def paragraph(*inline: Node | None) -> Node:
    content = [n for n in inline if n is not None and (n["type"] != "text" or n["text"])]
    return {"type": "paragraph", "content": content} if content else {"type": "paragraph"}


def heading(value: str, level: int = 3) -> Node:
    return {"type": "heading", "attrs": {"level": level}, "content": [text(value)]}


def bullet_list(items: Iterable[Node]) -> Node | None:
    """A list of paragraphs; None when there is nothing to list (ADF refuses empty lists)."""
    entries = [{"type": "listItem", "content": [item]} for item in items]
    return {"type": "bulletList", "content": entries} if entries else None


def code_block(value: str) -> Node:
    return {"type": "codeBlock", "content": [text(value)]} if value else {"type": "codeBlock"}


def doc(*blocks: Node | None) -> Node:
    return {"type": "doc", "version": 1, "content": [b for b in blocks if b is not None]}


def description_doc(content: TicketText) -> Node:
    """The issue description: what, facts, details, next action, links, footer."""
    blocks: list[Node | None] = [
        heading("What failed"),
        paragraph(text(content.what)),
        bullet_list(paragraph(text(f"{label}: ", strong()), text(value)) for label, value in content.facts),
    ]
    if content.details:
        blocks.append(heading("Details"))
        for label, value in content.details:
            if "\n" in value or len(value) > 120:
                blocks += [paragraph(text(label, strong())), code_block(value)]
            else:
                blocks.append(paragraph(text(f"{label}: ", strong()), text(value)))
    blocks += [heading("Next action"), paragraph(text(content.next_action))]
    if content.links:
        blocks += [heading("Links"), bullet_list(paragraph(text(title, link(url))) for title, url in content.links)]
    blocks.append(paragraph(text(content.footer)))
    return doc(*blocks)


def comment_doc(body: str, links: Iterable[tuple[str, str]] = ()) -> Node:
    """A comment: one paragraph, then links (the run that failed last) if any."""
    return doc(paragraph(text(body)), bullet_list(paragraph(text(title, link(url))) for title, url in links))


# -- Data Center: the same tree as wiki markup ----------------------------------------------------


def to_wiki(node: Node) -> str:
    """Wiki markup for the subset above (Jira Server / Data Center REST v2 bodies)."""
    return "\n".join(_wiki_block(b) for b in node.get("content", [])).strip() + "\n"


_WIKI_SPECIAL = str.maketrans({c: "\\" + c for c in "{}[]|*"})


def _wiki_inline(nodes: Iterable[Node], *, verbatim: bool = False) -> str:
    out = []
    for n in nodes:
        value = n.get("text", "")
        if not verbatim:
            value = value.translate(_WIKI_SPECIAL)
        for mark in n.get("marks", []):
            if mark["type"] == "strong":
                value = f"*{value.strip()}* " if value.endswith(" ") else f"*{value}*"
            elif mark["type"] == "code":
                value = "{{" + value + "}}"
            elif mark["type"] == "link":
                value = f"[{value}|{mark['attrs']['href']}]"
        out.append(value)
    return "".join(out)


def _wiki_block(node: Node) -> str:
    kind = node["type"]
    if kind == "heading":
        return f"h{node['attrs']['level']}. {_wiki_inline(node.get('content', []))}"
    if kind == "paragraph":
        return _wiki_inline(node.get("content", [])) + "\n"
    if kind == "codeBlock":
        return "{noformat}\n" + _wiki_inline(node.get("content", []), verbatim=True) + "\n{noformat}"
    if kind == "bulletList":
        return "\n".join("* " + " ".join(_wiki_block(child).strip() for child in item["content"]) for item in node["content"]) + "\n"
    raise ValueError(f"no wiki rendering for ADF node {kind!r}")
