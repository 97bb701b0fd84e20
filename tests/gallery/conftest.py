"""The ``gallery`` marker: whole-system tests against the demo's gallery of hard pages."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gallery: the whole system against one gallery page each "
        "(services/demo/gallery); select with -m gallery, leave out with -m 'not gallery'")
