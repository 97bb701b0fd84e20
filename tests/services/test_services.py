"""Each service as its own process against a real nats-server: help, ready, stop, bad settings."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from shared.natsserver import EmbeddedNats
from tests.conftest import free_port, free_ports
from tests.procs import Proc, base_env, module, status, wait_until
from tests.services.scheduler.calendars import two_weekends, write

SERVICES = ["scheduler", "extractor", "relay", "gateway"]
#: A figure each service must export (more in each service's metrics module).
FIGURES = {"scheduler": "slipstream_scheduler_events_total",
           "extractor": "slipstream_extractor_attempts_total",
           "relay": "slipstream_relay_upstream_fetches_total",
           "gateway": "slipstream_gateway_ws_clients"}


@pytest.mark.parametrize("name", [*SERVICES, "demo"])
def test_help_works_for_every_service(name: str, tmp_path: Path) -> None:
    """`python -m services.<name> --help` explains itself and exits 0."""
    done = subprocess.run([*module(f"services.{name}"), "--help"], capture_output=True, text=True,
                          env=base_env(tmp_path), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"usage: python -m services.{name}" in done.stdout
    assert "SLIPSTREAM_NATS_URL" in done.stdout


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", SERVICES)
def test_service_gets_ready_on_real_nats_and_stops_cleanly(name: str, tmp_path: Path,
                                                            nats_server: EmbeddedNats) -> None:
    """Each service connects, applies the topology, reports ready, and exits 0 on SIGTERM."""
    port = free_port()
    env = base_env(tmp_path, SLIPSTREAM_NATS_URL=nats_server.url,
                   SLIPSTREAM_SCHEDULER_CALENDAR=str(write(tmp_path / "cal.toml", two_weekends())),
                   **{f"SLIPSTREAM_{name.upper()}_PORT": str(port)})
    proc = Proc(module(f"services.{name}"), env)
    try:
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 45, f"{name} ready")
        report = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert report["ready"] is True
        assert report["checks"] == {**report["checks"], "nats": "ok", "topology": "ok"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "python_info" in metrics
        assert f"# TYPE {FIGURES[name]} " in metrics
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SERVICES)
def test_readiness_follows_nats_down_and_back(name: str, tmp_path: Path) -> None:
    """Start order does not matter: /readyz says NATS is missing, turns ready by itself when it
    comes, says so again when NATS goes away, and recovers without a restart."""
    nats_port, port = free_ports(2)
    env = base_env(tmp_path, SLIPSTREAM_NATS_URL=f"nats://127.0.0.1:{nats_port}",
                   SLIPSTREAM_NATS_RECONNECT_WAIT="0.2",
                   SLIPSTREAM_SCHEDULER_CALENDAR=str(write(tmp_path / "cal.toml", two_weekends())),
                   **{f"SLIPSTREAM_{name.upper()}_PORT": str(port)})
    proc = Proc(module(f"services.{name}"), env)
    server = EmbeddedNats(tmp_path / "nats", port=nats_port)
    try:
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 503, 45, "readyz 503")
        assert "not connected" in httpx.get(f"http://127.0.0.1:{port}/readyz").text
        server.start()
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 30, "ready after NATS")
        server.stop()
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 503, 30, "503 without NATS")
        assert status(f"http://127.0.0.1:{port}/healthz") == 200  # alive all along
        server.start()
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 30, "ready again")
    finally:
        code = proc.stop(signal.SIGTERM)
        server.stop()
    assert code == 0, proc.output


def test_bad_settings_give_one_clear_error_and_exit_2(tmp_path: Path) -> None:
    """Every bad setting is listed in one message; nothing starts."""
    config = tmp_path / "bad.toml"
    config.write_text('[relay]\nport = 0\nbogus = true\n')
    done = subprocess.run([*module("services.relay"), "--config", str(config)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env=base_env(tmp_path, SLIPSTREAM_NATS_URL="http://not-nats"))
    assert done.returncode == 2
    err = done.stderr
    assert err.startswith("slipstream relay: invalid settings")
    assert "relay.port = 0: must be a TCP port" in err
    assert "relay.bogus: unknown setting" in err
    assert "nats.url = 'http://not-nats': must be a NATS URL" in err
    assert "Traceback" not in err


def test_port_in_use_is_a_clear_error(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    """A taken port names the setting to change and exits 1, without a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(module("services.gateway"), capture_output=True, text=True, timeout=60,
                              check=False,
                              env=base_env(tmp_path, SLIPSTREAM_NATS_URL=nats_server.url,
                                           SLIPSTREAM_GATEWAY_PORT=str(port)))
    assert done.returncode == 1
    assert f"gateway.port: 127.0.0.1:{port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr
