"""Settings from defaults, TOML and SLIPSTREAM_* variables, with one error listing all problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slipstream.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    """With nothing set, every service has a working default (loopback, documented ports)."""
    s = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    assert (s.gateway.port, s.relay.port, s.demo.port) == (8080, 8081, 8090)
    assert s.gateway.host == "127.0.0.1"
    assert s.nats.servers == []
    assert s.relay_public_url == "http://127.0.0.1:8081"
    assert s.data_path == tmp_path


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """Precedence is defaults < TOML < environment; strings are converted to the field type."""
    path = write(tmp_path, '[relay]\nport = 9001\nhost = "0.0.0.0"\n[gateway]\nport = 9000\n')
    s = load_settings(path, env={"SLIPSTREAM_RELAY_PORT": "9101", "SLIPSTREAM_DEMO_ENABLED": "no",
                                 "SLIPSTREAM_GATEWAY_ALLOWED_ORIGINS": "http://a.test, https://b.test"})
    assert s.relay.port == 9101
    assert s.relay.host == "0.0.0.0"
    assert s.relay_public_url == "http://127.0.0.1:9101"
    assert s.gateway.port == 9000
    assert s.demo.enabled is False
    assert s.gateway.allowed_origins == ["http://a.test", "https://b.test"]


def test_config_file_is_found_through_slipstream_config(tmp_path: Path) -> None:
    """SLIPSTREAM_CONFIG names the file when --config is not given."""
    path = write(tmp_path, 'log_level = "debug"\n[nats]\nurl = "nats://10.0.0.1:4222"\n')
    s = load_settings(env={"SLIPSTREAM_CONFIG": str(path)})
    assert s.log_level == "debug"
    assert s.nats.servers == ["nats://10.0.0.1:4222"]


def test_nats_url_is_a_fallback_for_slipstream_nats_url() -> None:
    """NATS_URL works as the ecosystem's usual name; SLIPSTREAM_NATS_URL wins over it."""
    assert load_settings(env={"NATS_URL": "nats://a:1"}).nats.servers == ["nats://a:1"]
    both = load_settings(env={"NATS_URL": "nats://a:1", "SLIPSTREAM_NATS_URL": "nats://b:2,nats://c:3"})
    assert both.nats.servers == ["nats://b:2", "nats://c:3"]


def test_one_error_lists_every_bad_setting(tmp_path: Path) -> None:
    """Unknown keys, bad URLs and bad ports are all reported at once, each naming its setting."""
    path = write(tmp_path, '[relay]\nport = 70000\nprot = 1\n[nats]\nurl = "http://wrong"\n'
                           'colour = "red"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={"SLIPSTREAM_GATEWAY_PORT": "eighty", "SLIPSTREAM_BOGUS": "1"})
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 6, problems
    assert "relay.port = 70000: must be a TCP port from 1 to 65535" in problems
    assert "relay.prot: unknown setting" in problems
    assert "nats.url = 'http://wrong': must be a NATS URL" in problems
    assert "colour: unknown setting" in problems
    assert "gateway.port = 'eighty'" in problems
    assert "SLIPSTREAM_BOGUS: unknown setting" in problems
    assert str(path) in str(info.value)


def test_errors_never_echo_secrets() -> None:
    """A bad value that holds a password is shown with the password hidden."""
    with pytest.raises(SettingsError) as info:
        load_settings(env={"SLIPSTREAM_REDIS_URL": "http://user:hunter2@cache:6379"})
    assert "hunter2" not in str(info.value)
    assert "redis.url" in str(info.value)


def test_unreadable_or_invalid_toml_is_reported(tmp_path: Path) -> None:
    """A missing file or broken TOML is a settings error, not a traceback."""
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write(tmp_path, "[relay\nport=1"), env={})


def test_the_readme_configuration_example_is_valid(tmp_path: Path) -> None:
    """The TOML example in the README loads without a single problem (the README cannot lie)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Configuration", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    s = load_settings(write(tmp_path, block), env={})
    assert s.scheduler.durations == {"race": 9000.0}
    assert s.nats.servers == ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]
