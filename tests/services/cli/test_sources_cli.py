"""`slipstream sources` argument handling (pure): edits keep saved secrets unless replaced or
removed; `check` tells a page URL from a source id."""

from __future__ import annotations

import argparse

from services.cli.sources import add_parser, edit_patch, is_url


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sources", *argv])


def test_an_edit_keeps_saved_headers_and_cookies_it_does_not_name() -> None:
    """--header replaces one value; the others are kept (None); --remove-header drops one."""
    args = parse("edit", "site-a", "--header", "X-Key=new=value", "--remove-header", "X-Old",
                 "--priority", "3")
    patch = edit_patch(args, ["X-Key", "X-Keep", "X-Old"], ["sid"])
    assert patch == {"priority": 3, "headers": {"X-Key": "new=value", "X-Keep": None}}


def test_an_edit_without_header_options_leaves_headers_alone() -> None:
    """Only the fields given are in the patch."""
    assert edit_patch(parse("edit", "site-a", "--name", "A"), ["X-Key"], ["sid"]) == {"name": "A"}


def test_check_tells_a_page_url_from_a_source_id() -> None:
    """A URL or an option other than --json runs the chain here; an id asks an extractor."""
    assert is_url(["https://example.org/page"])
    assert is_url(["https://example.org/page", "--extractor", "http"])
    assert not is_url(["demo-plain"])
    assert not is_url(["demo-plain", "--json"])
