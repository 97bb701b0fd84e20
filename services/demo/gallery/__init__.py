"""The gallery of hard pages (opt-in: ``demo.gallery``): one page per pattern real live-sport
embed sites use to hide a stream, each behind the guard a CDN of that kind makes, all serving
the demo's live media. ``registry`` lists them; ``routes`` serves them under ``/g/``.
"""

from services.demo.gallery.registry import PATTERNS, PREFIX, Pattern

__all__ = ["PATTERNS", "PREFIX", "Pattern"]
