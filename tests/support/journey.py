"""Helpers for the browser journeys: on failure, a screenshot of every tab, kept as test artifacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.paths import SCREENSHOTS

# Top-level tabs, each with the sub-tabs it has (docs/architecture.md, "UI layout").
TABS = {
    "Chat": (), "Story": (), "Characters": ("Cards", "Personas", "Lorebooks"), "Models": (), "Presets": (),
    "Experts": (), "Settings": ("General", "Import / Export"),
}
FAILURES = SCREENSHOTS / "failures"


def _file_name(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").lower() for p in parts) + ".png"


def screenshot_every_tab(page, name: str) -> list[str]:
    """Clicks through every tab and sub-tab, one full-page screenshot each; returns the files written."""
    FAILURES.mkdir(parents=True, exist_ok=True)
    written = []

    def shoot(*parts: str) -> None:
        path = FAILURES / _file_name(name, *parts)
        page.screenshot(path=str(path), full_page=True)
        written.append(str(path))

    shoot("as-it-was")
    for tab, sub_tabs in TABS.items():
        try:
            page.get_by_role("tab", name=tab, exact=True).click(timeout=5_000)
            page.wait_for_timeout(500)
            shoot(tab)
            for sub_tab in sub_tabs:
                page.get_by_role("tab", name=sub_tab, exact=True).click(timeout=5_000)
                page.wait_for_timeout(500)
                shoot(tab, sub_tab)
        except Exception:  # a broken page still gives the screenshots it can
            continue
    return written


@contextmanager
def tabs_on_failure(page, name: str) -> Iterator[None]:
    """Runs a journey's steps; if one fails, every tab is photographed before the failure is raised."""
    try:
        yield
    except BaseException:
        if not page.is_closed():
            try:
                screenshot_every_tab(page, name)
            except Exception:
                pass
        raise
