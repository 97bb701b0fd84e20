"""Architecture contracts: services import shared and never each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml are kept (services independent, shared pure)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_every_service_package_has_an_entry_point() -> None:
    """Each service runs as `python -m services.<name>`."""
    for name in ("scheduler", "extractor", "relay", "gateway", "demo", "cli"):
        assert (ROOT / "services" / name / "__main__.py").is_file(), name
