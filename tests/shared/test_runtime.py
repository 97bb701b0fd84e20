"""The data folder lock and the runtime file through which commands find a running system."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.runtime import (
    AlreadyRunningError,
    DataDirLock,
    NatsNotFoundError,
    RuntimeInfo,
    nats_servers,
    read_runtime,
    write_runtime,
)
from shared.settings import load_settings


def info(pid: int) -> RuntimeInfo:
    return RuntimeInfo(pid=pid, started_at=datetime.now(UTC), nats_url="nats://127.0.0.1:4999",
                       gateway_url="http://127.0.0.1:8080", relay_url="http://127.0.0.1:8081")


def test_commands_find_the_nats_of_a_running_system(tmp_path: Path) -> None:
    """Without SLIPSTREAM_NATS_URL, the runtime file of a live `slipstream up` is used."""
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    with pytest.raises(NatsNotFoundError, match="SLIPSTREAM_NATS_URL"):
        nats_servers(settings)
    write_runtime(tmp_path, info(os.getpid()))
    assert nats_servers(settings) == ["nats://127.0.0.1:4999"]
    explicit = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_NATS_URL": "nats://10.1.1.1:4222"})
    assert nats_servers(explicit) == ["nats://10.1.1.1:4222"]


def test_a_runtime_file_left_by_a_dead_process_is_ignored(tmp_path: Path) -> None:
    """A crash leaves the file behind; its dead pid makes it count as absent."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    write_runtime(tmp_path, info(int(proc.stdout)))
    assert read_runtime(tmp_path) is None


def test_only_one_system_per_data_folder(tmp_path: Path) -> None:
    """A second lock on the same folder fails with a message naming the folder."""
    first = DataDirLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match=str(tmp_path)):
            DataDirLock(tmp_path).acquire()
    finally:
        first.release()
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()
