"""Subject and key builders."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import subjects
from shared.calendar import Token
from shared.sessions import SessionKey
from shared.streams import StreamId
from shared.subjects import InvalidTokenError


def test_slug_makes_tokens_from_human_names() -> None:
    """Accents, spaces and punctuation become a lower-case dashed token."""
    assert subjects.slug("São Paulo Grand Prix") == "sao-paulo-grand-prix"
    assert subjects.slug("Emilia-Romagna  GP!") == "emilia-romagna-gp"


@given(st.text(max_size=200))
def test_slug_is_always_a_valid_token_or_refused(text: str) -> None:
    """Whatever the input, slug returns a valid token or raises InvalidTokenError."""
    try:
        token = subjects.slug(text)
    except InvalidTokenError:
        return
    assert subjects.check_token(token) == token


@pytest.mark.parametrize("bad", ["", "Monaco", "a.b", "a b", "*", ">", "-x", "x" * 65])
def test_check_token_refuses_what_would_break_a_subject(bad: str) -> None:
    """Wildcards, dots, spaces, capitals and over-long tokens are refused."""
    with pytest.raises(InvalidTokenError):
        subjects.check_token(bad)


def test_session_subjects_and_keys_share_the_session_key() -> None:
    """Event subjects and stream keys start from the same session key, so wildcards filter."""
    key = subjects.session_key(2026, "monaco", "race")
    assert key == "2026.monaco.race"
    assert subjects.session_event(key, "live") == "sessions.2026.monaco.race.live"
    assert subjects.stream_key(key, "demo-plain") == "2026.monaco.race.demo-plain"
    assert subjects.stream_keys(key) == "2026.monaco.race.*"
    assert subjects.stream_keys() == ">"
    assert subjects.deadletter("extractor", key) == "deadletter.extractor.2026.monaco.race"


@pytest.mark.parametrize("bad", ["2026.monaco", "monaco.2026.race", "2026.monaco.race.x", "26.a.b"])
def test_malformed_session_keys_are_refused(bad: str) -> None:
    """A session key is exactly season.event.kind."""
    with pytest.raises(InvalidTokenError):
        subjects.check_session_key(bad)


def test_the_session_a_subject_names_or_none() -> None:
    """Session events and jobs name their session; garbage names none (and never raises)."""
    assert subjects.session_of(subjects.session_event("2026.monaco.race", "live")) \
        == "2026.monaco.race"
    assert subjects.session_of(subjects.extract_job("2026.monaco.race", "demo")) \
        == "2026.monaco.race"
    for garbage in ("sessions.x", "jobs.extract.x", "sessions.0000.unknown.unknown.live",
                    "sessions.2026.monaco.race", "sessions.2026.monaco.race.live.x",
                    "jobs.extract.2026.Monaco.race.demo", "other.2026.monaco.race.live", ""):
        assert subjects.session_of(garbage) is None


@given(st.text(max_size=120))
def test_any_subject_has_a_valid_dead_letter_subject(subject: str) -> None:
    """Whatever a message's subject, its dead letter has a subject the DEADLETTER stream stores."""
    letter = subjects.deadletter("extract-worker", subjects.session_of(subject))
    assert letter.startswith(f"{subjects.DEADLETTER_PREFIX}.extract-worker.")
    assert all(subjects.check_token(t) for t in letter.split(".")[2:] if not t.isdigit())
    assert letter.count(".") in (2, 4)  # deadletter.<consumer>.unparsed, or .<session key>
    assert subjects.deadletter("extractor", None) == "deadletter.extractor.unparsed"


def test_one_token_pattern_for_every_token_shaped_field() -> None:
    """The msgspec patterns of the contracts accept exactly what check_token and
    check_session_key accept: one token rule, spelled once."""
    for value in ("monaco", "a" * 64, "a" * 65, "Monaco", "-x", "a.b", "sao-paulo_2"):
        token_ok = _valid(subjects.check_token, value)
        assert _valid(lambda v: msgspec.convert(v, StreamId), value) == token_ok
        assert _valid(lambda v: msgspec.convert(v, Token), value) == token_ok
        key = f"2026.{value}.race"
        assert _valid(lambda v: msgspec.convert(v, SessionKey), key) \
            == _valid(subjects.check_session_key, key)


def _valid(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except (InvalidTokenError, msgspec.ValidationError):
        return False
    return True
