"""The data folder and the runtime file through which every command finds a running system.

``slipstream up`` holds an exclusive lock on ``<data>/slipstream.lock`` while it runs and writes
``<data>/runtime.json`` with the addresses it chose (the embedded NATS port is picked by the
server itself, since 4222 may be taken). Other commands read that file; a file whose owner
process is gone counts as absent.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO, Final

import msgspec

from shared.codec import PayloadError, decode, encode
from shared.settings import NatsSettings, Settings
from shared.times import UtcDateTime

RUNTIME_FILE: Final = "runtime.json"
#: Where ``slipstream up`` keeps the NATS credentials it generated (``shared.access``).
CREDENTIALS_DIR: Final = "credentials"
LOCK_FILE: Final = "slipstream.lock"


class RuntimeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a running ``slipstream up`` tells the other commands."""

    pid: int
    started_at: UtcDateTime
    nats_url: str
    gateway_url: str
    relay_url: str
    demo_url: str | None = None


class AlreadyRunningError(RuntimeError):
    """Another ``slipstream up`` already runs on this data folder."""


class NatsNotFoundError(RuntimeError):
    """No NATS URL is configured and no running ``slipstream up`` was found."""


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data folder (private to the user) and return it."""
    path = settings.data_path
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class DataDirLock:
    """Exclusive ownership of a data folder for the lifetime of ``slipstream up``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            info = read_runtime(self.path.parent)
            owner = f" (pid {info.pid}, web UI {info.gateway_url})" if info else ""
            raise AlreadyRunningError(
                f"slipstream is already running on data folder {self.path.parent}{owner}; "
                "stop it first or choose another SLIPSTREAM_DATA_DIR"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def write_runtime(data_dir: Path, info: RuntimeInfo) -> None:
    """Write the runtime file atomically."""
    target = data_dir / RUNTIME_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(encode(info))
    tmp.replace(target)


def read_runtime(data_dir: Path) -> RuntimeInfo | None:
    """The runtime file of a live ``slipstream up`` on this folder, or ``None``."""
    try:
        info = decode((data_dir / RUNTIME_FILE).read_bytes(), RuntimeInfo)
    except (OSError, PayloadError):
        return None
    return info if pid_alive(info.pid) else None


def clear_runtime(data_dir: Path) -> None:
    """Remove the runtime file (on shutdown)."""
    (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def ops_nats(settings: Settings) -> NatsSettings:
    """The NATS settings the CLI (``replay``, ``tail``) connects with: the configured ones, or,
    with no NATS configured, those of a running ``slipstream up``'s ``ops`` user (its
    password file in the data folder)."""
    if settings.nats.servers or settings.nats.user:
        return settings.nats
    path = settings.data_path / CREDENTIALS_DIR / "ops.password"
    if not path.exists():
        return settings.nats
    return msgspec.structs.replace(settings.nats, user="ops", password_file=str(path))


def nats_servers(settings: Settings) -> list[str]:
    """NATS servers to use: the configured ones, else those of a running ``slipstream up``."""
    if settings.nats.servers:
        return settings.nats.servers
    info = read_runtime(settings.data_path)
    if info is None:
        raise NatsNotFoundError(
            f"no NATS to connect to: set SLIPSTREAM_NATS_URL, or start `slipstream up` "
            f"with the same data folder ({settings.data_path})"
        )
    return [info.nats_url]
