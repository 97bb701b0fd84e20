"""Seeding the sources bucket and putting it back from the change events, on a real
nats-server."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client

from services.extractor.follow import restore_from_events, seed
from shared import topology
from shared.settings import load_settings
from shared.sourceadmin import SourceAdmin, read_all
from shared.sources import parse


async def test_seeding_adds_file_sources_once_and_keeps_live_edits(nc: Client, tmp_path: Path) -> None:
    """The file's source is added; a live edit survives a second seed of the same file."""
    js = nc.jetstream()
    kv = await topology.sources_kv(js)
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true"})
    assert await seed(js, kv, settings) == 3
    await SourceAdmin(js, kv).edit("demo-plain", {"priority": 99}, "cli:test")
    assert await seed(js, kv, settings) == 0
    records = await read_all(kv)
    assert records["demo-plain"][0].priority == 99
    assert records["demo-plain"][0].updated_by == "cli:test"


async def test_a_lost_bucket_comes_back_from_the_change_events(nc: Client) -> None:
    """Sources added live and lost with their bucket while no extractor held them return:
    one without secrets as it was, one with a header disabled, its header named, no value;
    a removed one stays removed."""
    js = nc.jetstream()
    admin = SourceAdmin(js, await topology.sources_kv(js))
    await admin.add(parse({"id": "plain", "url": "https://p.test/{event}", "priority": 7}), "cli:t")
    await admin.add(parse({"id": "keyed", "url": "https://k.test/",
                           "headers": {"X-Key": "secret-value-5"}}), "cli:t")
    await admin.add(parse({"id": "gone", "url": "https://g.test/"}), "cli:t")
    await admin.remove("gone", "cli:t")
    await js.delete_stream(topology.SOURCES_BUCKET_STREAM)
    await topology.apply(js)
    kv = await topology.sources_kv(js)
    assert await read_all(kv) == {}

    assert await restore_from_events(js, kv) == 2
    records = {k: r for k, (r, _) in (await read_all(kv)).items()}
    assert sorted(records) == ["keyed", "plain"]
    assert records["plain"].enabled
    assert records["plain"].priority == 7
    assert not records["keyed"].enabled
    assert records["keyed"].headers == {"X-Key": ""}
    assert await restore_from_events(js, kv) == 0
