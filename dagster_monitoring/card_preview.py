"""Teams card previews: an HTML page that renders cards with the official Adaptive Cards JS
renderer, and a PNG of it from headless Chromium when one is installed.

The page (``card_preview.html``) loads ``adaptivecards`` from ``tests/render/node_modules`` in a
checkout (installed by ``scripts/install_system_deps.sh``), else from unpkg.com, so it opens in
any browser. The PNG needs Chromium and the local renderer (no network from Chromium here).
Plain Python; the card rendering test uses the same page.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .shipped import REPO_ROOT

ADAPTIVECARDS_VERSION = "3.0.6"  # pinned in tests/render/package.json
LOCAL_RENDERER = REPO_ROOT / "tests" / "render" / "node_modules" / "adaptivecards"  # in a checkout only
CDN_RENDERER = f"https://unpkg.com/adaptivecards@{ADAPTIVECARDS_VERSION}/"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WIDTH = 800  # desktop: the page's cards are at most 760 px wide
MOBILE_WIDTH = 390  # a phone in portrait (Teams mobile); the rendering tests check nothing overflows
MIN_WINDOW = 500  # headless Chromium's narrowest window; narrower pages set their own width (card_page)


def local_renderer() -> Path | None:
    """The npm ``adaptivecards`` package folder, when this is a checkout that has installed it."""
    in_checkout = (REPO_ROOT / "pyproject.toml").is_file()
    return LOCAL_RENDERER if in_checkout and (LOCAL_RENDERER / "dist" / "adaptivecards.min.js").is_file() else None


def card_page(cards: dict[str, Any] | Sequence[dict[str, Any]], width: int | None = None) -> str:
    """The preview page with ``cards`` (one AdaptiveCard or a list) in place of its placeholder;
    the renderer from this checkout, else from the CDN.

    ``width``: the page is that many px wide whatever the window (Chromium's cannot be narrower
    than :data:`MIN_WINDOW`). The layout is the one of a window that wide: the renderer's CSS has
    no width media queries and the page measures itself, not the window (``pageWidth`` in its result)."""
    local = local_renderer()
    renderer_base = local.as_uri() + "/" if local else CDN_RENDERER
    template = (resources.files("dagster_monitoring") / "card_preview.html").read_text(encoding="utf-8")
    payload = json.dumps(cards if isinstance(cards, dict) else list(cards), ensure_ascii=False).replace("</", "<\\/")
    page, count = re.subn(
        r'(<script type="application/json" id="dm-card-json">).*?(</script>)',
        lambda m: str(m.group(1)) + payload + str(m.group(2)),
        template,
        count=1,
        flags=re.S,
    )
    if count != 1:
        raise RuntimeError("card_preview.html lost its dm-card-json script")
    head = f'<head>\n<base href="{renderer_base}">'
    if width is not None:
        head += f"\n<style>html {{ width: {int(width)}px; }}</style>"
    return page.replace("<head>", head, 1)


def find_chromium() -> str | None:
    exe = "/usr/bin/chromium"
    return exe if os.access(exe, os.X_OK) else shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(exe: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """One headless Chromium call with a throwaway profile; raises with Chromium's stderr on failure."""
    with tempfile.TemporaryDirectory(prefix="dm-chromium-") as profile:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def page_result(dom: str) -> dict[str, Any]:
    """The JSON the page writes into ``<pre id="dm-result">`` after rendering."""
    match = re.search(r'<pre id="dm-result"[^>]*>(.*?)</pre>', dom, flags=re.S)
    if not match:
        return {}
    return json.loads(html.unescape(match.group(1)) or "{}")


def dump_dom(exe: str, page: Path, width: int = WIDTH) -> str:
    """The DOM of ``page`` after its script ran, in a window ``width`` px wide (at least
    :data:`MIN_WINDOW`: a narrower page sets its width itself, see :func:`card_page`)."""
    return chromium(exe, f"--window-size={max(width, MIN_WINDOW)},1000", "--dump-dom", page.as_uri()).stdout


def screenshot(exe: str, page: Path, png: Path, height: int, width: int = WIDTH) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    chromium(exe, f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri())
    return png


@dataclass(frozen=True)
class Preview:
    html: Path
    png: Path | None
    note: str | None = None  # why there is no PNG
    rendered: int = 0  # cards the renderer drew (0 when there is no PNG)


def write_preview(cards: Sequence[dict[str, Any]], html_path: Path) -> Preview:
    """Write the HTML page for ``cards`` and, when Chromium and the local renderer exist, a PNG
    sized to the rendered cards next to it."""
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(card_page(list(cards)), encoding="utf-8")
    exe, renderer = find_chromium(), local_renderer()
    if exe is None or renderer is None:
        missing = " and ".join(
            m
            for m, ok in (("chromium", exe), ("the npm adaptivecards renderer (npm ci --prefix tests/render in a checkout)", renderer))
            if not ok
        )
        return Preview(html_path, None, f"no PNG: needs {missing}; the HTML opens in any browser")
    try:
        result = page_result(dump_dom(exe, html_path))
        if not result.get("ok"):
            return Preview(html_path, None, f"no PNG: the renderer reported {result.get('errors') or 'nothing'}")
        png = screenshot(exe, html_path, html_path.with_suffix(".png"), int(result.get("height") or 1000))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return Preview(html_path, None, f"no PNG: {exc}")
    return Preview(html_path, png, rendered=int(result.get("count") or 0))
