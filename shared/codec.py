"""Encoding and decoding of every payload that crosses a boundary (NATS messages, KV values).

One encoder, one decoder per type, a size cap on every decode and one typed error, so a bad
message is reported the same way wherever it is read.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, overload

import msgspec

T = TypeVar("T")

#: Largest payload any Slipstream contract may have; NATS and KV limits are set from it.
MAX_PAYLOAD_BYTES: Final = 256 * 1024

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


class PayloadError(ValueError):
    """A payload could not be decoded into its contract (too large, not JSON, wrong shape)."""

    def __init__(self, type_name: str, reason: str) -> None:
        super().__init__(f"invalid {type_name} payload: {reason}")
        self.type_name = type_name
        self.reason = reason


def encode(value: msgspec.Struct) -> bytes:
    """Encode a contract Struct as compact JSON."""
    return _encoder.encode(value)


@overload
def decode(data: bytes | bytearray | memoryview, type_: type[T], *,
           max_bytes: int = MAX_PAYLOAD_BYTES) -> T: ...
@overload
def decode(data: bytes | bytearray | memoryview, type_: Any, *,
           max_bytes: int = MAX_PAYLOAD_BYTES) -> Any: ...  # a union such as SessionEvent
def decode(data: bytes | bytearray | memoryview, type_: Any, *,
           max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """Decode ``data`` into ``type_``; raise :class:`PayloadError` on anything unexpected."""
    name = getattr(type_, "__name__", repr(type_))
    if len(data) > max_bytes:
        raise PayloadError(name, f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(name, str(exc)) from exc
