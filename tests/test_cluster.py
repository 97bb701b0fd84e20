"""Scale-out on one machine: a 3-node NATS cluster (JetStream, everything at 3 replicas), the
demo origin, a scheduler, two extractors and two relays, all real processes. In the middle of
the live demo session one NATS node (the leader of the streams that matter) and one extractor
are killed with SIGKILL: no session event is lost, no job is queued twice, the surviving
extractor keeps every stream fresh, and a viewer fetching through a relay keeps getting new
segments. The cluster runs with permissions on: a NATS user per role (``shared.access``), each
process connecting as its own, no anonymous access."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import m3u8
import nats
import pytest

from shared import access, topology
from shared.calendar import demo_calendar_path
from shared.codec import decode
from shared.kv import keys as kv_keys
from shared.natsserver import ClusterNode, EmbeddedNats
from shared.relay_urls import Signer, load_secret
from shared.streams import Health, StreamRecord
from tests.conftest import free_ports
from tests.procs import Proc, base_env, login, module, status, wait_until
from tests.system import stored_events

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EmbeddedNats]]:
    routes = free_ports(3)
    creds = access.ensure_credentials(tmp_path / "data" / access.CREDENTIALS_DIR)
    users = access.authorization({role: c.password for role, c in creds.items()})
    nodes = [EmbeddedNats(tmp_path / f"nats{i}", name=f"n{i}", cluster=ClusterNode(
        port=routes[i], routes=tuple(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(routes)
                                     if j != i)), authorization=users) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def _jetstream_ready(servers: list[str], data: Path) -> bool:
    try:
        nc = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=1,
                                **login(data, "ops"))
    except (OSError, nats.errors.Error):
        return False
    try:
        await nc.jetstream().account_info()
    except (nats.errors.Error, TimeoutError):
        return False
    else:
        return True
    finally:
        await nc.close()


async def _anonymous(servers: list[str]) -> None:
    nc = await nats.connect(servers, connect_timeout=2, allow_reconnect=False)
    await nc.close()


async def _snapshot(servers: list[str], data: Path) -> dict[str, object]:
    """What must survive: every session event (subject and message id), the job queue, and the
    stream records (health and revision)."""
    nc = await nats.connect(servers, connect_timeout=2, **login(data, "ops"))
    try:
        js = nc.jetstream()
        sessions = await js.stream_info(topology.SESSIONS_STREAM)
        events = await stored_events(js)
        jobs = await js.stream_info(topology.JOBS_STREAM, subjects_filter=">")
        kv = await topology.streams_kv(js)
        records = {}
        for key in await kv_keys(kv, "*.demo.sprint.*"):
            entry = await kv.get(key)
            if entry.value:
                records[key] = (decode(entry.value, StreamRecord).health, entry.revision)
        return {"events": events, "jobs": dict(jobs.state.subjects or {}), "records": records,
                "leader": sessions.cluster.leader if sessions.cluster else None,
                "jobs_leader": jobs.cluster.leader if jobs.cluster else None}
    finally:
        await nc.close()


def snapshot(servers: list[str], data: Path) -> dict[str, object]:
    """The snapshot, retried while the cluster elects new stream leaders (requests time out
    meanwhile)."""
    deadline = time.monotonic() + 45
    while True:
        try:
            return asyncio.run(_snapshot(servers, data))
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_a_nats_node_and_an_extractor_die_mid_session(cluster: list[EmbeddedNats],
                                                      tmp_path: Path) -> None:
    servers = [n.url for n in cluster]
    data = tmp_path / "data"
    wait_until(lambda: asyncio.run(_jetstream_ready(servers, data)), 30, "JetStream cluster ready")
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):  # no anonymous access
        asyncio.run(_anonymous(servers))
    demo_port, relay_a, relay_b, ext_a, ext_b, sched = free_ports(6)
    common = {"SLIPSTREAM_NATS_URL": ",".join(servers), "SLIPSTREAM_NATS_REPLICAS": "3",
              "SLIPSTREAM_NATS_RECONNECT_WAIT": "0.2", "SLIPSTREAM_DEMO_PORT": str(demo_port),
              "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true",
              "SLIPSTREAM_EXTRACTOR_DEMO_URL": f"http://127.0.0.1:{demo_port}",
              "SLIPSTREAM_EXTRACTOR_PROBE_INTERVAL": "2",
              "SLIPSTREAM_SCHEDULER_CALENDAR": str(demo_calendar_path(data)),
              "SLIPSTREAM_LOG_FORMAT": "json", "SLIPSTREAM_LOG_LEVEL": "debug"}
    procs: dict[str, Proc] = {}

    def start(name: str, service: str, **env: str) -> Proc:
        if service != "demo":  # each service as its own NATS user
            env["SLIPSTREAM_NATS_USER"] = service
            env["SLIPSTREAM_NATS_PASSWORD_FILE"] = str(
                access.password_path(data / access.CREDENTIALS_DIR, service))
        procs[name] = Proc(module(f"services.{service}"), base_env(data, **common, **env))
        return procs[name]

    try:
        start("demo", "demo").wait_for("demo origin ready", 60)
        start("relay-a", "relay", SLIPSTREAM_RELAY_PORT=str(relay_a))
        start("relay-b", "relay", SLIPSTREAM_RELAY_PORT=str(relay_b))
        start("extractor-a", "extractor", SLIPSTREAM_EXTRACTOR_PORT=str(ext_a))
        start("extractor-b", "extractor", SLIPSTREAM_EXTRACTOR_PORT=str(ext_b))
        start("scheduler", "scheduler", SLIPSTREAM_SCHEDULER_PORT=str(sched))
        for port in (relay_a, relay_b, ext_a, ext_b, sched):
            try:
                wait_until(lambda p=port: status(f"http://127.0.0.1:{p}/readyz") == 200, 90,  # type: ignore[misc]
                           f"service on {port} ready")
            except AssertionError as exc:
                tails = "\n".join(f"--- {n}\n" + "\n".join(pr.lines[-15:])
                                  for n, pr in procs.items())
                raise AssertionError(f"{exc}; ready: {status(f'http://127.0.0.1:{port}/readyz')}"
                                     f"\n{tails}") from None

        def all_healthy() -> bool:
            records = snapshot(servers, data)["records"]
            return len(records) == 3 and all(h is Health.OK for h, _ in records.values())  # type: ignore[union-attr]

        wait_until(all_healthy, 120, "three healthy demo streams")
        before = snapshot(servers, data)
        jobs = before["jobs"]
        assert isinstance(jobs, dict)
        assert sum(1 for s in jobs if ".demo.sprint." in s) == 3  # one job per source
        assert set(jobs.values()) == {1}  # and each queued once

        # A viewer plays the plain stream through relay A from now on.
        signer = Signer(load_secret(None, data))
        session = next(iter(before["records"])).rsplit(".", 1)[0]  # type: ignore[call-overload]
        master_url = signer.master_url(f"http://127.0.0.1:{relay_a}", session, "demo-plain", 600)
        with httpx.Client(timeout=10) as http:
            master = m3u8.loads(http.get(master_url).text)
            media_url = f"http://127.0.0.1:{relay_a}{master.playlists[0].uri}"

            def newest_segment() -> tuple[int, int]:
                media = m3u8.loads(http.get(media_url).text)
                last = media.segments[-1]
                got = http.get(f"http://127.0.0.1:{relay_a}{last.uri}")
                assert got.status_code == 200
                return media.media_sequence + len(media.segments) - 1, len(got.content)

            seq_before, size = newest_segment()
            assert size > 0

            # Kill the node that leads the SESSIONS stream, and one extractor.
            leader = before["leader"]
            victim = next(n for n in cluster if n.name == leader)
            victim.kill()
            procs["extractor-a"].popen.kill()
            survivors = [n.url for n in cluster if n is not victim]

            # The viewer keeps getting new segments through the relay.
            deadline = time.monotonic() + 30
            fetched = []
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, AssertionError):
                    fetched.append(newest_segment()[0])
                if fetched and max(fetched) >= seq_before + 3:
                    break
                time.sleep(0.5)
            assert fetched
            assert max(fetched) >= seq_before + 3, fetched

        # The surviving extractor runs every job of the session, the killed one's included.
        killed_at = time.time()

        def runs_after_kill() -> set[str]:
            keys = set()
            for line in list(procs["extractor-b"].lines):
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("event") == "job run" and ".demo.sprint." in entry.get("key", "") \
                            and datetime.fromisoformat(entry["timestamp"]).timestamp() > killed_at:
                        keys.add(entry["key"])
            return keys

        wait_until(lambda: runs_after_kill() == set(before["records"]), 90,  # type: ignore[call-overload]
                   "every sprint job run by the surviving extractor")

        # Nothing acknowledged was lost, nothing was queued twice, every stream still healthy.
        after = snapshot(survivors, data)
        assert before["events"] <= after["events"]  # type: ignore[operator]
        assert all(h is Health.OK for h, _ in after["records"].values())  # type: ignore[union-attr]
        assert set(after["records"]) == set(before["records"])  # type: ignore[call-overload]
        assert after["jobs"] == jobs  # the same jobs, still each once
        assert after["leader"] != leader
        assert procs["extractor-b"].popen.poll() is None
        # ready (its checks ask NATS, which may still be electing leaders for a few seconds)
        wait_until(lambda: status(f"http://127.0.0.1:{ext_b}/readyz") == 200, 30, "extractor ready")
    finally:
        for proc in procs.values():
            if proc.popen.poll() is None:
                proc.stop(signal.SIGTERM, timeout=30)
