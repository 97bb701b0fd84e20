"""Validating an XMLTV guide against the XMLTV DTD with xmllint (libxml2-utils)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DTD = Path(__file__).resolve().parents[2] / "fixtures" / "xmltv.dtd"


def assert_valid_xmltv(xml: str, folder: Path) -> None:
    """Fail the test, quoting xmllint, unless ``xml`` is valid against the XMLTV DTD."""
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.fail("xmllint is not installed: scripts/bootstrap installs libxml2-utils")
    path = folder / "guide.xml"
    path.write_text(xml, encoding="utf-8")
    result = subprocess.run([xmllint, "--noout", "--dtdvalid", str(DTD), str(path)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"not valid XMLTV:\n{result.stderr}"
