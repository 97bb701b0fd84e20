"""`slipstream up` end to end: everything starts, restarts what dies, and stops without leftovers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import m3u8
import nats
import nats.errors
import pytest
from nats.js.api import DeliverPolicy

from shared import bus, topology
from shared.codec import decode
from shared.feed import StreamChanged
from shared.kv import keys as kv_keys
from shared.public import PublicEvent
from shared.sessions import SessionEvent
from shared.settings import NatsSettings
from shared.streams import StreamRecord
from tests.conftest import free_ports
from tests.procs import (
    Proc,
    alive,
    base_env,
    children_of,
    identity,
    login,
    module,
    status,
    still_running,
    wait_until,
)
from tests.system import go_live, healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def ports_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = base_env(tmp_path / "data", **{f"SLIPSTREAM_{n.upper()}_PORT": str(p)
                                          for n, p in ports.items()})
    return env, ports


def slipstream(*args: str) -> list[str]:
    return module("services.cli") + list(args)


async def assert_topology_and_live_session(url: str, data: Path) -> None:
    nc = await nats.connect(url, **login(data, "ops"))
    try:
        js = nc.jetstream()
        assert await topology.missing(js) == []
        # The demo calendar's sprint is live: the scheduler has said so on SESSIONS already.
        msg = await js.get_last_msg(topology.SESSIONS_STREAM, "sessions.*.demo.sprint.live")
        assert decode(msg.data, SessionEvent).session.key.endswith(".demo.sprint")  # type: ignore[arg-type]
    finally:
        await nc.drain()


async def assert_anonymous_refused(url: str) -> None:
    with pytest.raises(bus.NatsAuthError, match="requires credentials"):
        await bus.connect([url], "test", NatsSettings(url=url))


async def public_sprint_events(url: str, data: Path) -> dict[str, PublicEvent]:
    """What the consumer user sees on the public subjects of the demo sprint (the last event
    of each), with its own credentials."""
    nc = await nats.connect(url, **login(data, "consumer"))
    got: dict[str, PublicEvent] = {}
    try:
        sub = await nc.jetstream().subscribe(
            "public.>", stream=topology.PUBLIC_STREAM, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            while True:
                msg = await sub.next_msg(timeout=1)
                if ".demo.sprint" in msg.subject:
                    got[msg.subject] = decode(msg.data, PublicEvent)  # type: ignore[arg-type]
        await sub.unsubscribe()
    finally:
        await nc.drain()
    return got


async def sprint_streams(url: str, data: Path | None = None) -> dict[str, str]:
    """Health of each stream of the live demo sprint, by stream id."""
    nc = await nats.connect(url, **login(data, "ops"))
    try:
        kv = await topology.streams_kv(nc.jetstream())
        out = {}
        for key in await kv_keys(kv, "*.demo.sprint.*"):
            entry = await kv.get(key)
            if entry.value:
                out[key.rsplit(".", 1)[1]] = decode(entry.value, StreamRecord).health.value
        return out
    finally:
        await nc.drain()


def start_up(env: dict[str, str]) -> Proc:
    proc = Proc(slipstream("up"), env)
    proc.wait_for("Slipstream is ready", timeout=120)
    return proc


@pytest.mark.timeout(480)
def test_up_runs_the_system_restarts_the_dead_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Ready with a live demo; a killed service comes back; SIGTERM then SIGINT leave no process."""
    env, ports = ports_env(tmp_path)
    data = tmp_path / "data"
    proc = start_up(env)
    try:
        assert f"open http://127.0.0.1:{ports['gateway']}" in proc.output
        runtime = json.loads((data / "runtime.json").read_text())
        assert runtime["pid"] == proc.popen.pid
        asyncio.run(assert_topology_and_live_session(runtime["nats_url"], data))
        assert runtime["nats_url"] != "nats://127.0.0.1:4222"

        # NATS runs with a user per role: no anonymous access; the credentials and the server's
        # config are private; each service was given its own user and no other's password.
        asyncio.run(assert_anonymous_refused(runtime["nats_url"]))
        assert stat.S_IMODE((data / "nats" / "nats.conf").stat().st_mode) == 0o600
        for role in ("scheduler", "extractor", "relay", "gateway", "ops", "consumer"):
            path = data / "credentials" / f"{role}.password"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for pid in children_of(proc.popen.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_text()
            if "services.relay" in cmdline:
                environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
                assert "SLIPSTREAM_NATS_USER=relay" in environ
                files = [e for e in environ if e.startswith("SLIPSTREAM_NATS_PASSWORD")]
                assert files == [f"SLIPSTREAM_NATS_PASSWORD_FILE={data}/credentials/relay.password"]

        # The live demo session's streams are in the KV, healthy, within seconds.
        def demo_streams_ok() -> bool:
            got = asyncio.run(sprint_streams(runtime["nats_url"], data))
            return len(got) == 3 and all(h == "ok" for h in got.values())

        wait_until(demo_streams_ok, 60, "three healthy demo streams")

        # Other programs, as the consumer user, see the sprint and its healthy streams on the
        # public subjects (the extractor and the scheduler announce them).
        def public_ok() -> bool:
            got = asyncio.run(public_sprint_events(runtime["nats_url"], data))
            streams = [e for s, e in got.items() if s.startswith("public.streams.")]
            return (len(streams) == 3 and all(isinstance(e, StreamChanged)
                                              and e.stream.health.value == "ok" for e in streams)
                    and any(s.startswith("public.sessions.") for s in got))

        wait_until(public_ok, 30, "public events of the sprint for the consumer user")

        # The demo origin serves a live playlist whose media sequence advances.
        demo = f"http://127.0.0.1:{ports['demo']}/live/360p/index.m3u8"
        first = m3u8.loads(httpx.get(demo).text).media_sequence
        time.sleep(2.1)
        assert m3u8.loads(httpx.get(demo).text).media_sequence > first

        # Other commands find the running system by themselves.
        st = subprocess.run(slipstream("status"), env=env, capture_output=True, text=True,
                            timeout=60, check=False)
        assert st.returncode == 0, st.stdout + st.stderr
        assert st.stdout.count(" ready") == 4, st.stdout
        replayed = subprocess.run(slipstream("replay", "SESSIONS", "--since", "1h", "--json"),
                                  env=env, capture_output=True, text=True, timeout=60, check=False)
        assert replayed.returncode == 0, replayed.stderr
        events = [decode(json.dumps(json.loads(line)["data"]).encode(), SessionEvent)  # type: ignore[arg-type]
                  for line in replayed.stdout.splitlines()]
        assert any(e.session.key.endswith(".demo.sprint") and type(e).__name__ == "Live"
                   for e in events)
        second = subprocess.run(slipstream("up"), env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert second.returncode == 1
        assert "already running" in second.stderr

        # A service that dies is reported and restarted.
        relay_pid = next(p for p in children_of(proc.popen.pid)
                         if "services.relay" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(relay_pid, signal.SIGKILL)
        proc.wait_for("relay exited with status -9", timeout=10)
        wait_until(lambda: status(f"http://127.0.0.1:{ports['relay']}/readyz") == 200, 60,
                   "relay back")

        # The extractor too, mid-job: restarted, it takes new work (a session going live now
        # gets its three healthy streams from the new process).
        extractor_pid = next(p for p in children_of(proc.popen.pid)
                             if "services.extractor" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(extractor_pid, signal.SIGKILL)
        proc.wait_for("extractor exited with status -9", timeout=10)
        wait_until(lambda: status(f"http://127.0.0.1:{ports['extractor']}/readyz") == 200, 60,
                   "extractor back")
        tailing = Proc(slipstream("tail", "SESSIONS"), env)  # as the ops user, found by itself
        tailing.wait_for("following SESSIONS", timeout=30)  # it shows new events only
        go_live([runtime["nats_url"]], "2099.aftercrash.race", data)
        tailing.wait_for("2099.aftercrash.race.live", timeout=30)
        assert tailing.stop(signal.SIGINT) == 0, tailing.output
        wait_until(lambda: healthy([runtime["nats_url"]], "2099.aftercrash.race.*", data=data), 90,
                   "streams from the restarted extractor")

        pids = children_of(proc.popen.pid)
        assert len(pids) >= 6  # nats-server, demo, four services
    finally:
        code = proc.stop(signal.SIGTERM) if proc.popen.poll() is None else proc.popen.returncode
    assert code == 0, proc.output
    assert not [p for p in pids if alive(p)]
    assert not (data / "runtime.json").exists()

    # A second run on the same data folder starts cleanly; Ctrl-C (SIGINT) stops it.
    again = start_up(env)
    pids = children_of(again.popen.pid)
    code = again.stop(signal.SIGINT)
    assert code == 0, again.output
    assert "Slipstream stopped." in again.output
    assert not [p for p in pids if alive(p)]


def test_up_killed_outright_leaves_no_orphans(tmp_path: Path) -> None:
    """Even SIGKILL of `slipstream up` takes its children (NATS included) down with it."""
    env, _ = ports_env(tmp_path)
    proc = start_up(env)
    # By identity (pid and start time): with 32768 pids, a busy machine may reuse one meanwhile.
    children = {identity(p) for p in children_of(proc.popen.pid)} - {None}
    os.kill(proc.popen.pid, signal.SIGKILL)
    proc.popen.wait(10)
    try:  # (a stop that hangs is ended by each service's watchdog, STOP_DEADLINE = 15 s)
        wait_until(lambda: not any(still_running(c) for c in children), 30, "children to exit",
                   lambda: "\n".join(f"{c[0]}: {cmdline(c[0])}" for c in children
                                      if c is not None and still_running(c)))
    finally:  # an orphan must not outlive the test (and load every test after it)
        for child in children:
            if still_running(child):
                with contextlib.suppress(OSError):
                    os.kill(child[0], signal.SIGKILL)
    # ...and each stopped on its own, not at its watchdog's deadline (whose report says where
    # the stop hung)
    overruns = [line for log in sorted((tmp_path / "data" / "logs").glob("*.log"))
                for line in log.read_text(errors="replace").splitlines() if "stop overran" in line]
    assert not overruns, "\n".join(overruns)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "(gone)"


def test_up_refuses_bad_settings_with_one_error(tmp_path: Path) -> None:
    """Bad values and unknown keys are listed together; exit status 2; nothing starts."""
    env, _ = ports_env(tmp_path)
    config = tmp_path / "slipstream.toml"
    config.write_text('[gateway]\nport = "eighty"\n[extractor]\nthreads = 4\n')
    env["SLIPSTREAM_NATS_URL"] = "localhost:4222"
    del env["SLIPSTREAM_GATEWAY_PORT"]  # the environment would override the file
    done = subprocess.run(slipstream("--config", str(config), "up"), env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "gateway.port = 'eighty'" in done.stderr
    assert "extractor.threads: unknown setting" in done.stderr
    assert "nats.url = 'localhost:4222'" in done.stderr
    assert not (tmp_path / "data" / "nats").exists()


def test_up_reports_every_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    """Ports in use are all named at once; no NATS or service is started."""
    env, ports = ports_env(tmp_path)
    with socket.socket() as a, socket.socket() as b:
        for sock, name in ((a, "gateway"), (b, "relay")):
            sock.bind(("127.0.0.1", ports[name]))
            sock.listen()
        done = subprocess.run(slipstream("up"), env=env, capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 1
    assert f"gateway.port: 127.0.0.1:{ports['gateway']} is already in use" in done.stderr
    assert f"relay.port: 127.0.0.1:{ports['relay']} is already in use" in done.stderr
    assert not (tmp_path / "data" / "nats").exists()
