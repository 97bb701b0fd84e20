"""Structured logging for every service: JSON when not on a terminal, secrets redacted.

Third-party loggers (uvicorn, FastStream, nats), Python warnings and uncaught exceptions go
through the same processors, so one format and one redaction rule cover every line a service
writes. FastStream configures a ``faststream`` logger of its own on import (its own handler,
forced colours, no propagation): :func:`configure` takes it back, and brokers log through
:data:`BROKER_LOGGER`, which is ours.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, Final

import structlog

_SECRET_KEYS: Final = frozenset({
    "authorization", "cookie", "cookies", "set-cookie", "headers", "password", "token",
    "secret", "api_key", "proxy-authorization",
})
_URL: Final = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s@]+@)?"
                         r"(?P<rest>[^\s?#\"']*)(?P<query>\?[^\s#\"']*)?", re.IGNORECASE)


#: A request line in an access log: its query string and long path tokens (relay signatures,
#: upstream tokens in paths) are hidden as well.
_REQUEST: Final = re.compile(r"\b(?P<method>GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) "
                             r"(?P<path>/[^\s?]*)(?P<query>\?\S*)?(?= HTTP/)")
_TOKEN_SEGMENT: Final = re.compile(r"/[A-Za-z0-9_~.-]{20,}(?=/|$)")
#: A query string outside a URL with a scheme (yt-dlp names a page ``[generic] page?token=...``,
#: hosts and paths are quoted bare): a ``?`` followed by ``name=value`` up to the next space.
_BARE_QUERY: Final = re.compile(r"\?(?=[^\s#\"'?]*=)[^\s#\"']*")


def redact_text(text: str) -> str:
    """Hide credentials and query strings (tokens live there) in any URL inside ``text``, in
    query strings quoted without their URL, and in request lines of access logs."""
    def _sub(match: re.Match[str]) -> str:
        user = "***@" if match["user"] else ""
        query = "?***" if match["query"] else ""
        return f"{match['scheme']}{user}{match['rest']}{query}"

    def _request(match: re.Match[str]) -> str:
        path = _TOKEN_SEGMENT.sub("/***", match["path"])
        return f"{match['method']} {path}{'?***' if match['query'] else ''}"

    if "://" in text:
        text = _URL.sub(_sub, text)
    if " HTTP/" in text:
        text = _REQUEST.sub(_request, text)
    if "?" in text and "=" in text:
        text = _BARE_QUERY.sub("?***", text)
    return text


#: The logger FastStream brokers get (``shared.bus.broker``): it propagates to our handler.
BROKER_LOGGER: Final = "slipstream.broker"


class _NotTwice(logging.Filter):
    """Drop FastStream's own "Connection broken with ..." line: FastStream logs it from its
    wrapper around the broker's ``error_cb``, which logs the same error already (structured)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Connection broken with")


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in _SECRET_KEYS:
        return "***"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: redact secrets in every field of an event."""
    for key, value in list(event.items()):
        event[key] = _redact_value(key, value)
    return event


def configure(service: str, level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and stdlib logging for one service process."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if as_json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log is per request; keep it at warning unless debugging.
    quiet = "DEBUG" if level == "debug" else "WARNING"
    logging.getLogger("uvicorn.access").setLevel(quiet)
    # One line per HTTP request made (probes every few seconds) is debug material; so are
    # FastStream's per-message lines and its "callback for Task-N is being executed" on every
    # subscriber stop.
    for name in ("httpx", "httpcore", "streamlink", "yt_dlp", BROKER_LOGGER, "faststream"):
        logging.getLogger(name).setLevel(quiet)
    for name in (BROKER_LOGGER, "faststream"):
        theirs = logging.getLogger(name)
        theirs.handlers = []  # FastStream's own coloured stderr handler
        theirs.propagate = True
        if not any(isinstance(f, _NotTwice) for f in theirs.filters):
            theirs.addFilter(_NotTwice())
    logging.captureWarnings(True)
    _route_uncaught()
    structlog.contextvars.bind_contextvars(service=service)


def _route_uncaught() -> None:
    """Uncaught exceptions (main thread and threads) become one log line, not a raw traceback."""
    crash_log = logging.getLogger("slipstream.uncaught")

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        crash_log.critical("uncaught exception", exc_info=(kind, value, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def get(name: str) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name)
