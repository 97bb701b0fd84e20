"""Job contracts: the extraction job and the dead letter written when a job fails for good."""

from __future__ import annotations

import msgspec

from shared.sessions import Session
from shared.times import UtcDateTime


class ExtractJob(msgspec.Struct, frozen=True, kw_only=True):
    """Keep one source's stream for one session fresh, for as long as the session is on."""

    session: Session
    source_id: str
    #: A one-off run asked for because the stream's upstream refused the relay: it resolves
    #: afresh (no cached extraction), writes the record, and is done; the stream's keep-fresh
    #: job carries on as scheduled.
    reresolve: bool = False
    #: The generation of the source the job was queued for (``shared.sources``): a job of an
    #: older generation (the source was disabled and enabled again since) stops by itself.
    #: 0: any generation (jobs queued before sources were data).
    generation: int = 0


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A job that exhausted its deliveries, with the reason, so it never blocks the others."""

    consumer: str
    subject: str
    stream_sequence: int
    deliveries: int
    reason: str
    error_type: str = ""
    #: The original payload as text (JSON events); kept for replay and debugging.
    payload: str = ""
    failed_at: UtcDateTime
