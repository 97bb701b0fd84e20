"""`slipstream sources check`: what each extractor finds on a page, for operators."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.procs import base_env, module


def check(tmp_path: Path, demo: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(tmp_path, SLIPSTREAM_EGRESS_ALLOW=demo.removeprefix("http://"))
    return subprocess.run([*module("services.cli"), "sources", "check", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_check_lists_each_extractor_with_what_it_found(tmp_path: Path, demo: str) -> None:
    """The embedded page: http finds the playlist, its needs and variants; ytdlp does not."""
    done = check(tmp_path, demo, f"{demo}/pages/embedded", "--extractor", "http")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["extractor", "result", "time", "found"]
    assert lines[1].split()[:2] == ["http", "ok"]
    assert lines[1].endswith(f"{demo}/secure/master.m3u8")
    assert "needs header User-Agent, header Referer, header Origin, cookie demo_session" in lines[2]
    assert "640x360" in done.stdout


def test_check_fails_clearly_when_nothing_works(tmp_path: Path, demo: str) -> None:
    """No extractor finding a stream exits 1 with each one's reason."""
    done = check(tmp_path, demo, f"{demo}/pages/scripted", "--extractor", "http")
    assert done.returncode == 1
    assert "http        failed" in done.stdout
    assert "no playlist" in done.stdout
