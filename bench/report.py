"""The benchmarks' shared record: every figure a benchmark prints is also merged into
``test-artifacts/bench.json``, one object per figure, so a run can be compared with the last.

Each object: ``name``, ``value``, ``unit``, ``anchor`` (what it is measured against, if
anything), ``anchor_value``, ``ratio`` (value / anchor_value), ``spread`` (e.g. "min-max of 3
runs"), ``note`` and ``at`` (UTC time of the run). A figure recorded again under the same name
replaces the old one; figures of other benchmarks are kept.

    from bench.report import record
    record("relay cached 2 MB segment", 812.0, "req/s", anchor_name="nginx proxy_cache",
           anchor_value=725.0, spread="790-830 over 3 runs")
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

#: The file every benchmark merges into (relative to the repository root, wherever run from).
PATH: Final = Path(__file__).resolve().parent.parent / "test-artifacts" / "bench.json"


class ReportError(RuntimeError):
    """``bench.json`` exists but is not a list of figures: it is left alone, not overwritten."""


def record(name: str, value: float, unit: str, *, anchor_name: str | None = None,
           anchor_value: float | None = None, spread: str = "", note: str = "") -> None:
    """Merge one figure into :data:`PATH` (replacing an earlier figure of the same name)."""
    ratio = None
    if anchor_value is not None and anchor_value != 0:
        ratio = round(value / anchor_value, 4)
    entry: dict[str, Any] = {
        "name": name, "value": value, "unit": unit, "anchor": anchor_name,
        "anchor_value": anchor_value, "ratio": ratio, "spread": spread, "note": note,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    PATH.parent.mkdir(parents=True, exist_ok=True)
    # Several benchmark processes may record at once: one writer at a time, whole files only.
    with open(PATH.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        figures = [f for f in _load() if f.get("name") != name]
        figures.append(entry)
        fd, tmp = tempfile.mkstemp(dir=PATH.parent, prefix=".bench.", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(figures, out, indent=1)
                out.write("\n")
            os.replace(tmp, PATH)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _load() -> list[dict[str, Any]]:
    if not PATH.exists():
        return []
    try:
        data = json.loads(PATH.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{PATH} is not JSON ({exc}); move it away to start a new one") from exc
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise ReportError(f"{PATH} is not a list of figures; move it away to start a new one")
    return data
