"""Every figure of the last ``make bench`` run in one table, from ``test-artifacts/bench.json``,
with the previous run's value beside it (``bench.prev.json``, kept by ``scripts/bench``).

    .venv/bin/python bench/summary.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import PATH


def _load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def main() -> int:
    figures = _load(PATH)
    if not figures:
        print(f"no figures in {PATH}", file=sys.stderr)
        return 1
    previous = {f["name"]: f for f in _load(PATH.with_name("bench.prev.json"))}
    width = max(len(f["name"]) for f in figures)
    print(f"{'figure':<{width}}  {'value':>9} {'unit':<9} {'anchor':>9}  {'ratio':>7}  "
          f"{'last run':>9}  anchor / spread")
    for f in figures:
        last = previous.get(f["name"], {}).get("value")
        ratio = "-" if f.get("ratio") is None else f"{f['ratio']:.2f}"
        print(f"{f['name']:<{width}}  {_num(f['value']):>9} {f['unit']:<9} "
              f"{_num(f.get('anchor_value')):>9}  {ratio:>7}  {_num(last):>9}  "
              f"{f.get('anchor') or ''}{'; ' if f.get('anchor') and f.get('spread') else ''}"
              f"{f.get('spread') or ''}")
    print(f"(all figures: {PATH})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
