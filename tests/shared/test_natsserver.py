"""The embedded nats-server: free port, durable store, clean stop."""

from __future__ import annotations

import socket
from pathlib import Path

import nats

from shared import topology
from shared.natsserver import EmbeddedNats
from shared.runtime import pid_alive


def test_embedded_server_picks_its_own_port_when_another_listens(tmp_path: Path) -> None:
    """Two servers side by side each get a free loopback port (4222 may be taken)."""
    a, b = EmbeddedNats(tmp_path / "a"), EmbeddedNats(tmp_path / "b")
    try:
        url_a, url_b = a.start(), b.start()
        assert url_a != url_b
        for url in (url_a, url_b):
            assert url.startswith("nats://127.0.0.1:")
        conf = (tmp_path / "a" / "nats.conf").read_text()
        assert "sync_interval: always" in conf
        assert str(tmp_path / "a" / "store") in conf
    finally:
        a.stop()
        b.stop()
    assert a.process is not None
    assert not pid_alive(a.process.pid)


async def test_acked_data_survives_a_kill_and_restart(tmp_path: Path) -> None:
    """A KV value acked before SIGKILL is there after a restart on the same store."""
    server = EmbeddedNats(tmp_path / "n")
    url = server.start()
    nc = await nats.connect(url)
    await topology.apply(nc.jetstream())
    kv = await topology.sessions_kv(nc.jetstream())
    await kv.put("2026.monaco.race", b"live")
    await nc.close()
    server.kill()
    url = server.start()
    nc = await nats.connect(url)
    try:
        entry = await (await topology.sessions_kv(nc.jetstream())).get("2026.monaco.race")
        assert entry.value == b"live"
    finally:
        await nc.close()
        server.stop()


def test_server_binds_loopback_only(tmp_path: Path) -> None:
    """The embedded server is not reachable on other interfaces by default."""
    server = EmbeddedNats(tmp_path / "n")
    url = server.start()
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as s:
            s.settimeout(0.5)
            try:
                addresses = socket.gethostbyname_ex(socket.gethostname())[2]
            except OSError:  # a host name that does not resolve: nothing else to try
                addresses = []
            others = [ip for ip in addresses if not ip.startswith("127.")]
            for ip in others:
                assert s.connect_ex((ip, port)) != 0
        assert 'listen: "127.0.0.1:-1"' in (tmp_path / "n" / "nats.conf").read_text()
    finally:
        server.stop()
