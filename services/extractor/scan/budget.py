"""The budget of one scan: a wall-clock deadline and a cap on decoded output, checked
cooperatively by every decoder loop, so a hostile page ends in :class:`TooComplexError`
instead of a stalled worker."""

from __future__ import annotations

import time
from typing import Final

#: Most characters all decoders together may produce for one page (unpacked scripts, base64,
#: percent-decoded markup...).
MAX_OUTPUT: Final = 8 * 1024 * 1024


class TooComplexError(Exception):
    """The page needs more time or output than its budget allows."""


class Budget:
    """What a scan may still spend; shared by all decoders working on one page."""

    def __init__(self, seconds: float, *, max_output: int = MAX_OUTPUT) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.output = 0
        self.max_output = max_output

    def check(self) -> None:
        """Raise :class:`TooComplexError` once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise TooComplexError(f"page too complex: not scanned within {self.seconds:.1f} s")

    def charge(self, size: int) -> None:
        """Account for ``size`` characters of decoded output (and check the time)."""
        self.output += size
        if self.output > self.max_output:
            raise TooComplexError(f"page too complex: decodes to more than {self.max_output} "
                                  "characters")
        self.check()
