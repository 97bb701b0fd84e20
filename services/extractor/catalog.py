"""The sources the extractor knows: the operator's ``[[sources]]`` plus, under ``slipstream up``
with the demo, the demo origin's three pages (and its delayed feeds with ``demo.feeds``). Which
of them serve a given session.
"""

from __future__ import annotations

from shared.sessions import Session
from shared.settings import Settings, SourceSettings

DEMO_PAGES = (
    ("demo-plain", "Demo: plain page", "/pages/plain", 30),
    ("demo-embedded", "Demo: embedded player", "/pages/embedded", 20),
    ("demo-scripted", "Demo: scripted page", "/pages/scripted", 10),
)
#: The delayed feeds (``services.demo.feeds``), with ``demo.feeds`` on.
DEMO_FEEDS = (
    ("demo-onboard", "Demo feed: onboard (no clock)", "/pages/feed/onboard", 5),
    ("demo-world", "Demo feed: world (6 s behind)", "/pages/feed/world", 4),
    ("demo-data", "Demo feed: data (12 s behind)", "/pages/feed/data", 3),
)


def sources(settings: Settings) -> dict[str, SourceSettings]:
    """Every configured source by id (demo sources first when enabled)."""
    found: dict[str, SourceSettings] = {}
    if settings.extractor.demo_sources:
        base = settings.extractor.demo_url.rstrip("/")
        pages = DEMO_PAGES + (DEMO_FEEDS if settings.demo.feeds else ())
        for source_id, name, path, priority in pages:
            found[source_id] = SourceSettings(id=source_id, name=name, url=base + path,
                                              priority=priority, refresh=300.0)
    found.update({s.id: s for s in settings.sources})
    return found


def for_session(catalog: dict[str, SourceSettings], session: Session) -> list[SourceSettings]:
    """The sources that serve this session's kind, highest priority first."""
    serving = [s for s in catalog.values() if not s.kinds or session.kind in s.kinds]
    return sorted(serving, key=lambda s: -s.priority)
