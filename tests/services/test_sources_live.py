"""Operators change sources while a session runs (issue 19): `slipstream sources` against a
running `slipstream up`, and two extractor replicas following the same change, with no process
restarted. Real NATS, real services, the demo origin's keyed page (it needs a header)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.errors import BucketNotFoundError

from shared import topology
from shared.codec import decode
from shared.kv import keys as kv_keys
from shared.sourceadmin import read_all
from shared.streams import Health, StreamRecord
from tests.conftest import free_ports
from tests.procs import Proc, base_env, children_of, module, wait_until
from tests.system import System, go_live

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECRET = "alpha-secret-1234"


def services(pid: int) -> set[int]:
    """The processes `slipstream up` started itself (its services; not their Chromiums)."""
    found = set()
    for child in children_of(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{child}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(child)
    return found


class Up:
    def __init__(self, proc: Proc, data: Path, ports: dict[str, int], nats_url: str) -> None:
        self.proc, self.data, self.ports, self.nats_url = proc, data, ports, nats_url
        self.gateway = f"http://127.0.0.1:{ports['gateway']}"
        self.demo = f"http://127.0.0.1:{ports['demo']}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`slipstream ...` as an operator types it: no NATS flag, the data folder only."""
        return subprocess.run([*module("services.cli"), *args], env=base_env(self.data),
                              capture_output=True, text=True, timeout=120, check=False)

    def streams(self, source: str) -> list[dict[str, object]]:
        found: list[dict[str, object]] = httpx.get(f"{self.gateway}/api/streams", timeout=5).json()
        return [s for s in found if s["source"] and s["id"] == source]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("sources-up")
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = base_env(tmp / "data", **{f"SLIPSTREAM_{n.upper()}_PORT": str(p) for n, p in ports.items()})
    proc = Proc([*module("services.cli"), "up"], env)
    try:
        proc.wait_for("Slipstream is ready", timeout=120)
        runtime = json.loads((tmp / "data" / "runtime.json").read_text())
        yield Up(proc, tmp / "data", ports, runtime["nats_url"])
    finally:
        proc.stop(signal.SIGTERM)


def test_sources_add_makes_a_stream_healthy_and_disable_removes_it_within_10_s(up: Up) -> None:
    """`sources add` of the keyed page: its stream is ok on /api/streams within 10 s of the
    command; `disable` takes it off within 10 s; no process was restarted meanwhile."""
    wait_until(lambda: len(up.streams("demo-plain")) > 0, 90, "the demo streams")
    before = services(up.proc.popen.pid)
    started = time.monotonic()
    added = up.cli("sources", "add", "keyed", f"{up.demo}/pages/keyed", "--name", "Keyed",
                   "--header", f"X-Demo-Key={SECRET}", "--priority", "40")
    assert added.returncode == 0, added.stdout + added.stderr
    returned = time.monotonic()
    wait_until(lambda: any(s["health"] == "ok" for s in up.streams("keyed")), 10,
               "the added source's stream to be healthy")
    print(f"sources add -> healthy on /api/streams: {time.monotonic() - returned:.1f} s after "
          f"the command returned, {time.monotonic() - started:.1f} s after it was started")

    listed = up.cli("sources", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keyed = next(s for s in json.loads(listed.stdout) if s["id"] == "keyed")
    assert keyed["header_names"] == ["X-Demo-Key"]
    stats = json.loads(up.cli("sources", "stats", "keyed", "--json").stdout)
    assert stats[0]["successes"] >= 1
    assert stats[0]["streams_now"] >= 1
    assert stats[0]["last_extractor"] == "http"

    started = time.monotonic()
    disabled = up.cli("sources", "disable", "keyed", "--json")
    assert disabled.returncode == 0, disabled.stderr
    assert json.loads(disabled.stdout)["action"] == "disabled"  # nothing but the JSON
    returned = time.monotonic()
    wait_until(lambda: not up.streams("keyed"), 10, "the disabled source's stream to go")
    print(f"sources disable -> gone from /api/streams: {time.monotonic() - returned:.1f} s after "
          f"the command returned, {time.monotonic() - started:.1f} s after it was started")
    assert services(up.proc.popen.pid) == before

    history = up.cli("replay", "SOURCE_CHANGES", "--json")
    events = [json.loads(line)["data"] for line in history.stdout.splitlines()]
    keyed_events = [(e["action"], e["who"]) for e in events if e["source_id"] == "keyed"]
    assert [a for a, _ in keyed_events] == ["added", "disabled"]
    assert all(who.startswith("cli:") for _, who in keyed_events)
    for text in (added.stdout, added.stderr, listed.stdout, history.stdout,
                 *(p.read_text() for p in (up.data / "logs").glob("*.log"))):
        assert SECRET not in text


def test_sources_refuses_bad_input_readably(up: Up) -> None:
    """A bad URL template, an unknown extractor and a duplicate id exit 1 and say why."""
    bad_url = up.cli("sources", "add", "odd", "https://odd.test/{lap}")
    bad_ext = up.cli("sources", "add", "odd", "https://odd.test/", "--extractor", "curl")
    dupe = up.cli("sources", "add", "demo-plain", "https://odd.test/")
    missing = up.cli("sources", "show", "nothing-here", "--json")
    assert bad_url.returncode == 1
    assert "unknown fields ['lap']" in bad_url.stderr
    assert bad_ext.returncode == 1
    assert "unknown extractor 'curl'" in bad_ext.stderr
    assert dupe.returncode == 1
    assert "a source 'demo-plain' exists already" in dupe.stderr
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {"error": "no source 'nothing-here'"}


def test_sources_check_by_id_shows_every_candidate(up: Up) -> None:
    """`sources check ID` asks a running extractor: each extractor with its candidates."""
    done = up.cli("sources", "check", "demo-plain", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    reply = json.loads(done.stdout)
    assert reply["ok"] is True
    http = next(a for a in reply["attempts"] if a["extractor"] == "http")
    assert http["candidates"][0]["verdict"] == "accepted"


async def _kv_records(servers: list[str], pattern: str) -> dict[str, StreamRecord]:
    nc = await nats.connect(servers, connect_timeout=2)
    try:
        kv = await topology.streams_kv(nc.jetstream())
        found = {}
        for key in await kv_keys(kv, pattern):
            entry = await kv.get(key)
            if entry.value:
                found[key] = decode(entry.value, StreamRecord)
        return found
    finally:
        await nc.close()


async def _sources(servers: list[str]) -> dict[str, dict[str, str]]:
    nc = await nats.connect(servers, connect_timeout=2)
    try:
        records = await read_all(await topology.sources_kv(nc.jetstream()))
        return {k: dict(r.headers) for k, (r, _) in records.items()}
    except BucketNotFoundError:
        return {}  # not re-created yet
    finally:
        await nc.close()


async def _lose_bucket(servers: list[str]) -> None:
    nc = await nats.connect(servers, connect_timeout=2)
    try:
        await nc.jetstream().delete_stream(topology.SOURCES_BUCKET_STREAM)
    finally:
        await nc.close()


def test_two_extractor_replicas_follow_a_change_and_a_lost_bucket_comes_back(
        nats_url: str, tmp_path: Path) -> None:
    """Two replicas: both act on `sources add` and `disable`; the source's stream comes and
    goes; the sources bucket deleted behind their back is put back, secrets included."""
    system = System(tmp_path / "data", [nats_url])
    try:
        system.start("demo", "demo")
        e1 = system.start("e1", "extractor")
        e2 = system.start("e2", "extractor")
        system.wait_ready()
        session = go_live(system.servers, "2099.replicas.race")
        demo = f"http://127.0.0.1:{system.ports['demo']}"
        env = base_env(tmp_path / "cli", SLIPSTREAM_NATS_URL=nats_url)
        run = [*module("services.cli"), "sources"]
        added = subprocess.run([*run, "add", "keyed", f"{demo}/pages/keyed", "--header",
                                f"X-Demo-Key={SECRET}"], env=env, capture_output=True, text=True,
                               timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        key = f"{session.key}.keyed"

        def healthy() -> bool:
            found = asyncio.run(_kv_records(system.servers, key))
            return key in found and found[key].health is Health.OK

        wait_until(healthy, 10, f"stream {key}\n{system.tails()}")
        for proc in (e1, e2):  # each replica acted on the change itself
            proc.wait_for('"source started"', 5)

        asyncio.run(_lose_bucket(system.servers))
        wait_until(lambda: asyncio.run(_sources(system.servers)).get("keyed")
                   == {"X-Demo-Key": SECRET}, 30, "the sources bucket to be put back")
        assert "demo-plain" in asyncio.run(_sources(system.servers))
        assert healthy()

        disabled = subprocess.run([*run, "disable", "keyed"], env=env, capture_output=True,
                                  text=True, timeout=60, check=False)
        assert disabled.returncode == 0, disabled.stderr
        wait_until(lambda: key not in asyncio.run(_kv_records(system.servers, key)), 10,
                   "the disabled source's stream to go")
        for proc in (e1, e2):
            proc.wait_for('"source stopped; its streams removed"', 5)
        assert all(p.popen.poll() is None for p in system.procs.values())
    finally:
        system.stop()
