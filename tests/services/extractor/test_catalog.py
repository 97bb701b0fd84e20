"""What a change to a source in the bucket asks the extractors to do (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from services.extractor.catalog import Reaction, enabled, missed, react
from shared.sources import parse

A = msgspec.structs.replace(parse({"id": "a", "url": "https://a.example/",
                                   "headers": {"X-Key": "one"}}), generation=1)


def test_a_new_or_enabled_source_starts() -> None:
    """Added enabled, enabled again, or re-added under a new generation: jobs are queued."""
    assert react(None, A) is Reaction.START
    off = msgspec.structs.replace(A, enabled=False)
    assert react(off, msgspec.structs.replace(A, generation=2)) is Reaction.START
    assert react(A, msgspec.structs.replace(A, generation=2)) is Reaction.START
    assert react(None, off) is None


def test_a_disabled_or_removed_source_stops() -> None:
    """Disabled or removed: its streams go."""
    assert react(A, msgspec.structs.replace(A, enabled=False)) is Reaction.STOP
    assert react(A, None) is Reaction.STOP
    assert react(msgspec.structs.replace(A, enabled=False), None) is None


def test_an_edit_re_resolves_only_when_it_changes_what_is_resolved() -> None:
    """A new header re-resolves; a new name or priority changes nothing running."""
    assert react(A, msgspec.structs.replace(A, headers={"X-Key": "two"})) is Reaction.RERESOLVE
    assert react(A, msgspec.structs.replace(A, name="A", priority=3)) is None
    off = msgspec.structs.replace(A, enabled=False)
    assert react(off, msgspec.structs.replace(off, url="https://b.example/")) is None


def test_the_catalog_holds_enabled_sources_with_their_generations() -> None:
    """Disabled sources are out of the catalog."""
    catalog, generations = enabled({"a": A, "b": msgspec.structs.replace(A, id="b",
                                                                         enabled=False)})
    assert list(catalog) == ["a"]
    assert generations == {"a": 1}
    assert catalog["a"].headers == {"X-Key": "one"}


def test_a_recent_change_found_at_start_is_acted_on_again() -> None:
    """Only a change inside the dedup window is taken as possibly missed."""
    now = datetime(2026, 5, 24, tzinfo=UTC)
    recent = msgspec.structs.replace(A, updated_at=now - timedelta(minutes=5))
    old = msgspec.structs.replace(A, updated_at=now - timedelta(hours=2))
    assert missed(recent, now, 3000)
    assert not missed(old, now, 3000)
    assert not missed(msgspec.structs.replace(recent, enabled=False), now, 3000)
