"""The relay URL secret kept in the data folder: made once, whoever gets there first.

The relay and the gateway start together and both load it; if each made its own, every playback
URL the gateway mints would answer 403 at the relay until one of them restarted."""

from __future__ import annotations

import multiprocessing
import os
import stat
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from shared.relay_urls import load_secret

WORKERS = 8
ROUNDS = 40


def _race(folders: list[str], barrier: Barrier,
          results: multiprocessing.Queue[tuple[str, bytes | str]]) -> None:
    """One worker process: for each folder, wait for all the others, then load the secret."""
    for folder in folders:
        try:
            barrier.wait(timeout=30)
            got: bytes | str = load_secret(None, Path(folder))
        except Exception:  # noqa: BLE001 - reported to the test, which fails on it
            got = traceback.format_exc()
        results.put((folder, got))


def test_processes_racing_for_a_new_secret_all_get_the_same_complete_one(tmp_path: Path) -> None:
    """Eight processes released at once on an empty folder, round after round: every one comes
    back with the secret that is in the file, the file is whole, private, and alone."""
    folders = [str(tmp_path / f"round-{n}" / "data") for n in range(ROUNDS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results: multiprocessing.Queue[tuple[str, bytes | str]] = ctx.Queue()
    workers = [ctx.Process(target=_race, args=(folders, barrier, results)) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    got: dict[str, list[bytes | str]] = {folder: [] for folder in folders}
    try:
        for _ in range(WORKERS * ROUNDS):
            done, secret = results.get(timeout=60)
            got[done].append(secret)
    finally:
        for worker in workers:
            worker.join(timeout=30)
    failures = [s for seen in got.values() for s in seen if not isinstance(s, bytes)]
    assert not failures, failures[0]
    for folder, seen in got.items():
        path = Path(folder) / "relay.secret"
        on_disk = path.read_bytes()
        assert len(on_disk.strip()) == 43, on_disk  # secrets.token_urlsafe(32): complete
        assert set(seen) == {on_disk.strip()}, f"{folder}: {len(set(seen))} different secrets"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert os.listdir(folder) == ["relay.secret"]  # no temporary file left behind


def test_a_secret_once_made_is_kept(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path)
    assert load_secret(None, tmp_path) == first
    assert load_secret("configured-secret-value", tmp_path) == b"configured-secret-value"


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    """An empty file (a crash of an older version) would sign with an empty key: refused."""
    (tmp_path / "relay.secret").write_bytes(b"\n")
    with pytest.raises(ValueError, match="empty"):
        load_secret(None, tmp_path)
