"""The HLS playlist rewriter: every URI of a playlist becomes a relay URL. Pure: text in, text out.

What is a URI, and of what kind, is decided by its position (RFC 8216bis), never by its
extension: the line after ``EXT-X-STREAM-INF`` is a playlist, other URI lines are media
segments, and these attributes are rewritten:

    EXT-X-MEDIA URI (playlist)            EXT-X-I-FRAME-STREAM-INF URI (playlist)
    EXT-X-KEY / EXT-X-SESSION-KEY URI     EXT-X-MAP URI (media; BYTERANGE kept)
    EXT-X-PART URI (media)                EXT-X-PRELOAD-HINT URI (media)
    EXT-X-RENDITION-REPORT URI (playlist) EXT-X-SESSION-DATA URI (data)
    EXT-X-CONTENT-STEERING SERVER-URI     EXT-X-DATERANGE X-ASSET-URI (playlist), X-ASSET-LIST

The position also names what each resource is, as the extension the minter gives its relay URL
(players such as ffmpeg accept a segment only by a media extension that matches its format):
playlists ``.m3u8``, keys ``.key``, ``EXT-X-MAP`` init sections ``.mp4`` (``.ts`` when the
map is named ``.ts``: an MPEG-TS PAT/PMT), segments and parts after a map ``.m4s`` (or ``.ts``),
data ``.json``. A segment no map types gets ``""``: the minter names it with
:func:`services.relay.sniff.segment_extension` (a sniffed sibling, its name if that is a media
extension, else ``.ts``), so an upstream ``.png`` or ``.css`` name never reaches a player.
Media that must reach the viewer byte for byte is :attr:`Kind.RAW`: segments, parts and maps
under an ``EXT-X-KEY`` whose METHOD is not NONE (encrypted), or addressed by a byte range
(``EXT-X-BYTERANGE``, a ``BYTERANGE`` attribute, ``BYTERANGE-START``: offsets into the upstream
body, which cleaning would shift).

Relative URIs resolve against the playlist's final URL (after redirects). Variables from
``EXT-X-DEFINE`` (``NAME``/``VALUE``, ``QUERYPARAM`` from that URL, ``IMPORT`` given by the
caller) are substituted in URIs before they are resolved; ``QUERYPARAM`` definitions are then
dropped, since their values usually are credentials and the client no longer needs them.
Every other line, unknown tags included, is kept byte for byte. URIs with a scheme other than
http(s) (``skd://``, ``data:``) are kept as they are: they are not fetched through the relay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qs, urljoin, urlsplit

from services.relay.sniff import Media, name_extension


class Kind:
    """What a URI points at, which decides how the relay serves it (plain strings: hot path)."""

    PLAYLIST: Final = "p"
    #: A segment, part or init section: sniffed, cleaned of cloaking.
    MEDIA: Final = "m"
    #: Media relayed byte for byte: encrypted, or addressed by byte ranges.
    RAW: Final = "r"
    KEY: Final = "k"
    DATA: Final = "d"


class PlaylistError(ValueError):
    """The text is not an HLS playlist the relay can rewrite."""


#: Turns an absolute upstream URL into a relay URL: ``mint(url, kind, extension)``, where the
#: extension is what the resource is (``""``: a segment only the minter can name).
Mint = Callable[[str, str, str], str]
#: :data:`Mint` for many URLs of one kind and extension at once (the plain playlist's batch):
#: must answer exactly what ``[mint(url, kind, ext) for url in urls]`` would.
MintMany = Callable[[list[str], str, str], list[str]]

MAX_LINE: Final = 64 * 1024
#: A six-hour DVR window of 2 s segments with LL-HLS parts stays well under this.
MAX_LINES: Final = 250_000
#: Distinct EXT-X-KEY tags in one playlist (key rotation every segment of a long window fits).
MAX_KEYS: Final = 12_000
_Spec = tuple[tuple[str, str, str], ...]
#: Tags whose URIs are of one kind wherever they are: (attribute, kind, extension).
_URI_ATTRS: Final[Mapping[str, _Spec]] = {
    "#EXT-X-MEDIA:": (("URI", Kind.PLAYLIST, Media.PLAYLIST),),
    "#EXT-X-I-FRAME-STREAM-INF:": (("URI", Kind.PLAYLIST, Media.PLAYLIST),),
    "#EXT-X-SESSION-KEY:": (("URI", Kind.KEY, Media.KEY),),
    "#EXT-X-RENDITION-REPORT:": (("URI", Kind.PLAYLIST, Media.PLAYLIST),),
    "#EXT-X-SESSION-DATA:": (("URI", Kind.DATA, Media.DATA),),
    "#EXT-X-CONTENT-STEERING:": (("SERVER-URI", Kind.DATA, Media.DATA),),
    "#EXT-X-DATERANGE:": (("X-ASSET-URI", Kind.PLAYLIST, Media.PLAYLIST),
                          ("X-ASSET-LIST", Kind.DATA, Media.DATA)),
}
_KEY_SPEC: Final[_Spec] = (("URI", Kind.KEY, Media.KEY),)
#: Tags whose URIs depend on what came before them (keys, maps, byte ranges).
_MEDIA_TAGS: Final = frozenset({"#EXT-X-KEY:", "#EXT-X-MAP:", "#EXT-X-PART:",
                                "#EXT-X-PRELOAD-HINT:", "#EXT-X-BYTERANGE:"})
#: The tags a playlist is scanned for once: those that make it need the line-by-line loop (a tag
#: with a URI, or one that changes what the URI lines after it are), variables, and variants. A
#: playlist without the first two (and no ``$``, no CR) is "plain": its URI lines are all of one
#: kind, rewritten a list at a time (:func:`_rewrite_plain`).
_SPECIAL: Final = re.compile(r"#EXT-X-(" + "|".join(
    re.escape(tag[len("#EXT-X-"):-1]) for tag in (*_URI_ATTRS, *_MEDIA_TAGS, "#EXT-X-DEFINE:",
                                                  "#EXT-X-STREAM-INF:")) + "):")
#: The first URI line after the first line.
_FIRST_URI: Final = re.compile(r"\n([^#\n][^\n]*)")
_ATTR: Final = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\r\n]*)')
_VAR: Final = re.compile(r"\{\$([A-Za-z0-9_-]+)\}")


def attributes(text: str) -> dict[str, str]:
    """An attribute list as a dict (quoted values unquoted)."""
    return {m[1]: m[2][1:-1] if m[2].startswith('"') else m[2] for m in _ATTR.finditer(text)}


class _Resolver:
    """Resolves URIs against one base URL, with a fast path for plain relative names."""

    def __init__(self, base: str, variables: dict[str, str]) -> None:
        self.base = base
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PlaylistError("the playlist URL is not an absolute http(s) URL")
        # The folder comes from the path alone: a query may hold slashes too (Akamai's
        # ``hdnts=exp=...~acl=/live/*~hmac=...``), and a relative name never keeps the query.
        folder = parts.path[: parts.path.rfind("/") + 1] or "/"
        self.prefix = f"{parts.scheme}://{parts.netloc}{folder}"
        self.variables = variables

    def __call__(self, uri: str) -> str | None:
        """The absolute http(s) URL of ``uri``, or ``None`` to leave it untouched."""
        if "{$" in uri:
            uri = _VAR.sub(self._substitute, uri)
        first = uri[:1]
        if first and first not in "/.?#" and ":" not in uri[:8]:
            return self.prefix + uri  # the common case: a name next to the playlist
        absolute = urljoin(self.base, uri)
        return absolute if absolute.startswith(("http://", "https://")) else None

    def _substitute(self, match: re.Match[str]) -> str:
        name = match[1]
        if name not in self.variables:
            raise PlaylistError(f"undefined variable {{${name}}} in a URI")
        return self.variables[name]


def _rewrite_attrs(line: str, spec: _Spec, resolve: _Resolver, mint: Mint) -> str:
    for name, kind, ext in spec:
        key = f'{name}="'
        start = line.find(key)
        # Attribute names are matched at an attribute boundary only (after ":" or ",").
        while start != -1 and line[start - 1] not in ":,":
            start = line.find(key, start + 1)
        if start == -1:
            continue
        value_start = start + len(key)
        end = line.find('"', value_start)
        if end == -1:
            raise PlaylistError(f"unterminated {name} attribute")
        absolute = resolve(line[value_start:end])
        if absolute is not None:
            line = line[:value_start] + mint(absolute, kind, ext) + line[end:]
    return line


def _has(line: str, name: str) -> bool:
    """Whether an attribute list has attribute ``name`` (at an attribute boundary)."""
    return f":{name}=" in line or f",{name}=" in line


def _value(line: str, name: str) -> str:
    """An unquoted attribute's value (``METHOD``, ``TYPE``), or ``""``."""
    for lead in (":", ","):
        at = line.find(f"{lead}{name}=")
        if at != -1:
            start = at + len(name) + 2
            end = line.find(",", start)
            return line[start:end if end != -1 else len(line)].strip()
    return ""


class _Media:
    """What the tags read so far say about the next media URIs of a playlist."""

    def __init__(self, master: bool) -> None:
        self.master = master
        self.encrypted = False
        self.ranged = False  # the next segment line has an EXT-X-BYTERANGE
        self.segment_ext = ""  # "" until an EXT-X-MAP types the segments

    def kind(self, ranged: bool) -> str:
        return Kind.RAW if ranged or self.encrypted else Kind.MEDIA

    def next_line(self) -> tuple[str, str]:
        """The kind and extension of the next URI line."""
        if self.master:  # a URI line of a master playlist is a variant playlist
            return Kind.PLAYLIST, Media.PLAYLIST
        return self.kind(self.ranged), self.segment_ext

    def line_done(self) -> tuple[str, str]:
        """A URI line was read: its byte range (if any) covered it alone."""
        self.ranged = False
        return self.next_line()

    def tag(self, line: str, tag: str, resolve: _Resolver, mint: Mint) -> str:
        """Read (and rewrite) one of :data:`_MEDIA_TAGS`."""
        if tag == "#EXT-X-BYTERANGE:":
            self.ranged = True
            return line
        if tag == "#EXT-X-KEY:":
            self.encrypted = _value(line, "METHOD").upper() not in ("NONE", "")
            return _rewrite_attrs(line, _KEY_SPEC, resolve, mint)
        if tag == "#EXT-X-MAP:":
            init = Media.TS if name_extension(attributes(line).get("URI", "")) == ".ts" \
                else Media.INIT
            self.segment_ext = Media.TS if init == Media.TS else Media.FRAGMENT
            spec = (("URI", self.kind(_has(line, "BYTERANGE")), init),)
        elif tag == "#EXT-X-PART:":
            spec = (("URI", self.kind(_has(line, "BYTERANGE")), self.segment_ext),)
        else:  # EXT-X-PRELOAD-HINT: the next part, or the next map
            ranged = _has(line, "BYTERANGE-START")
            if _value(line, "TYPE").upper() == "MAP":
                spec = (("URI", self.kind(ranged), Media.INIT),)
            else:
                spec = (("URI", self.kind(ranged), self.segment_ext),)
        return _rewrite_attrs(line, spec, resolve, mint)


_DEFINE: Final = re.compile(r"^#EXT-X-DEFINE:([^\r\n]*)(\r?\n)?", re.M)


def rewrite(text: str, base: str, mint: Mint, *, imports: Mapping[str, str] | None = None,
            mint_many: MintMany | None = None, refresh: Refresh | None = None,
            generation: object = None) -> str:
    """Rewrite every URI of ``text`` (fetched from ``base``) with ``mint``.

    ``mint_many``, when given, mints a plain playlist's URI lines all at once. ``refresh`` keeps
    a plain media playlist's rewrite for the next answer from the same URL, which reuses it if
    ``generation`` (the minter's state: what it has forgotten since) is the same.

    Raises :class:`PlaylistError` for anything that is not a rewritable HLS playlist.
    """
    body = _body(text)
    many = mint_many or _each(mint)
    if refresh is not None:
        reused = refresh.reuse(body, base, generation, _Resolver(base, {}), many)
        if reused is not None:
            refresh.keep(base, generation, body, reused)
            return reused
    body, variables, tags = _prepare(body, base, imports)
    resolve = _Resolver(base, variables)
    # URI lines of a master playlist follow EXT-X-STREAM-INF (the spec allows nothing else
    # there, and a playlist is master or media, never both): the kind follows from the position.
    media = _Media(master="STREAM-INF" in tags)
    lines = body.split("\n")
    _check_shape(body, lines, keys="KEY" in tags)
    if tags <= {"STREAM-INF"} and "$" not in body and "\r" not in body:
        kind, ext = media.next_line()
        plain = _rewrite_plain(lines, body, resolve, many, kind=kind, ext=ext)
        if plain is not None:
            if refresh is not None and not media.master:
                refresh.keep(base, generation, body, plain)
            return plain
    return _by_lines(lines, media, resolve, mint)


def rewrite_by_lines(text: str, base: str, mint: Mint, *,
                     imports: Mapping[str, str] | None = None) -> str:
    """:func:`rewrite` one line at a time, always: what the faster paths must equal (tests)."""
    body, variables, tags = _prepare(_body(text), base, imports)
    lines = body.split("\n")
    _check_shape(body, lines, keys="KEY" in tags)
    return _by_lines(lines, _Media(master="STREAM-INF" in tags), _Resolver(base, variables), mint)


def _by_lines(lines: list[str], media: _Media, resolve: _Resolver, mint: Mint) -> str:
    """The general rewrite, line by line: keys, maps, byte ranges, attributes and all."""
    line_kind, line_ext = media.next_line()
    ranged = False
    # The hot loop: one cheap test per line; only URI lines and URI-bearing tags do more.
    for i, line in enumerate(lines):
        first = line[:1]
        if first == "#":
            if line.startswith("#EXT-X-"):
                tag = line[: line.find(":") + 1]
                spec = _URI_ATTRS.get(tag)
                if spec is not None:
                    lines[i] = _rewrite_attrs(line, spec, resolve, mint)
                elif tag in _MEDIA_TAGS:  # in a master playlist too: no URI is left upstream
                    lines[i] = media.tag(line, tag, resolve, mint)
                    line_kind, line_ext = media.next_line()
                    ranged = media.ranged
        elif first and first != "\r":
            uri = line.strip()
            if uri:
                absolute = resolve(uri)
                if absolute is not None:
                    lines[i] = mint(absolute, line_kind, line_ext) + \
                        ("\r" if line[-1] == "\r" else "")
                if ranged:
                    line_kind, line_ext = media.line_done()
                    ranged = False
    return "\n".join(lines)


def _each(mint: Mint) -> MintMany:
    def many(urls: list[str], kind: str, ext: str) -> list[str]:
        return [mint(url, kind, ext) for url in urls]

    return many


def _is_plain(text: str) -> bool:
    """Whether ``text`` (a piece of a media playlist) has only plain lines: no tag of
    :data:`_SPECIAL` (no URI in a tag, nothing that changes the URI lines after it, no variable,
    no variant), no ``$``, no CR (CRLF playlists take the loop)."""
    return "$" not in text and "\r" not in text and _SPECIAL.search(text) is None


def _uri_indices(lines: list[str], body: str) -> range | list[int]:
    """Where the URI lines of a plain playlist (or a piece of one) ``body`` are in ``lines``, its
    lines. A live
    playlist repeats the same tags before each segment: then the URI lines are every ``step``-th
    line, which a count of the other lines confirms; otherwise each line is looked at."""
    first = next((i for i, line in enumerate(lines[:64]) if line[:1] not in "#"), None)
    if first is not None:
        second = next((i for i in range(first + 1, min(first + 64, len(lines)))
                       if lines[i][:1] not in "#"), None)
        if second is not None:
            every = range(first, len(lines), second - first)
            candidates = lines[first::second - first]
            # tags and comments, blank lines
            others = body.count("\n#") + body.startswith("#") + lines.count("")
            if len(lines) - others == len(candidates) and "" not in candidates and \
                    "\n#" not in "\n" + "\n".join(candidates):
                return every
    return [i for i, line in enumerate(lines) if line[:1] not in "#"]  # not a tag, not blank


def _resolve_all(uris: list[str], resolve: _Resolver) -> list[str] | None:
    """The absolute URL of each URI, or ``None`` when one is unusual (spaces around it, a URL
    the relay does not fetch): the loop's to handle."""
    joined = "\n" + "\n".join(uris)
    if " " in joined or "\t" in joined:
        return None
    prefix = resolve.prefix
    # All names next to the playlist (what the resolver's fast path is, for a whole list)?
    if ":" not in joined and "/" not in joined and "." not in uris and ".." not in uris and \
            not ("?" in joined and "\n?" in joined):
        return [prefix + uri for uri in uris]
    resolved = [resolve(uri) for uri in uris]
    return None if None in resolved else resolved  # type: ignore[return-value]


def _rewrite_plain(lines: list[str], body: str, resolve: _Resolver, mint_many: MintMany, *,
                   kind: str, ext: str) -> str | None:
    """A plain playlist rewritten a list at a time: every URI line is of one kind, and every
    other line is kept. The same text as the line-by-line loop gives, or ``None`` for the loop."""
    where = _uri_indices(lines, body)
    uris = [lines[i] for i in where] if isinstance(where, list) else lines[where.start::where.step]
    absolutes = _resolve_all(uris, resolve) if uris else []
    if absolutes is None:
        return None
    minted = mint_many(absolutes, kind, ext) if absolutes else []
    if isinstance(where, range):
        lines[where.start::where.step] = minted
    else:
        for i, line in zip(where, minted, strict=True):
            lines[i] = line
    return "\n".join(lines)


def _odd_shape(piece: str, *, end: bool) -> bool:
    """Whether a new piece of a refreshed playlist has a line too long or (``end``: the piece
    ends the playlist) ends cut off: what :func:`_check_shape` refuses."""
    if _overlong(piece, piece.split("\n")):
        return True
    if not end:
        return False
    last = next((line for line in reversed(piece.split("\n")[-3:]) if line.strip()), "")
    return last.startswith(("#EXTINF:", "#EXT-X-STREAM-INF:"))


class Refresh:
    """A playlist's last rewrite, which the next answer from the same URL reuses: a live
    window that moved on repeats most of the last one's lines, and their rewritten form is
    copied instead of minted again. Only plain media playlists are kept."""

    __slots__ = ("base", "generation", "out", "text")

    def __init__(self) -> None:
        self.base = self.text = self.out = ""
        self.generation: object = None

    def keep(self, base: str, generation: object, text: str, out: str) -> None:
        self.base, self.generation, self.text, self.out = base, generation, text, out

    def reuse(self, body: str, base: str, generation: object, resolve: _Resolver,
              mint_many: MintMany) -> str | None:
        """``body`` rewritten by reusing the last rewrite, or ``None`` when that does not apply:
        the last body's lines from the new body's first URI line to its end must begin the
        rest of the new body (a window that lost segments at its start and gained some at its
        end), and everything new must be plain."""
        old, out = self.text, self.out
        if not old or base != self.base or generation != self.generation or \
                not old.endswith("\n"):
            return None
        found = _FIRST_URI.search(body)
        if found is None:
            return None
        at, uri = found.start(1), found[1]
        start = old.find(f"\n{uri}\n")
        if start == -1:
            return None
        shared = old[start + 1:]
        if not body.startswith(shared, at):
            return None
        head, tail = body[:at], body[at + len(shared):]
        if _odd_shape(head, end=False) or _odd_shape(tail, end=True):
            return None  # the whole rewrite says what is wrong
        if " " in uri or "\t" in uri or not (_is_plain(head) and _is_plain(tail)):
            return None
        # The same lines in the last output: each line out for each line in, so the first
        # URI's rewritten line with as many lines after it as the shared part has.
        absolute = resolve(uri)
        if absolute is None:
            return None
        line = mint_many([absolute], Kind.MEDIA, "")[0]
        begin = out.find(f"\n{line}\n")
        if begin == -1 or out.count("\n", begin + 1) != shared.count("\n"):
            return None
        rest = "" if not tail else _rewrite_plain(tail.split("\n"), tail, resolve, mint_many,
                                                   kind=Kind.MEDIA, ext="")
        if rest is None:
            return None
        return head + out[begin + 1:] + rest


def _body(text: str) -> str:
    """The playlist's text without a byte-order mark, or :class:`PlaylistError`."""
    body = text.removeprefix("\ufeff")
    if not body.startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    # before splitting: a million lines is a million strings
    if len(body) >= MAX_LINES and body.count("\n") >= MAX_LINES:
        raise PlaylistError(f"more than {MAX_LINES} lines")
    return body


def _prepare(body: str, base: str, imports: Mapping[str, str] | None
             ) -> tuple[str, dict[str, str], set[str]]:
    """The playlist's text to rewrite, its variables and which of :data:`_SPECIAL`'s tags it
    has (named without ``#EXT-X-`` and ``:``), or :class:`PlaylistError`."""
    tags = {found[1] for found in _SPECIAL.finditer(body)}  # no list of every match
    variables: dict[str, str] = {}
    if "DEFINE" in tags:
        body = _defines(body, base, variables, imports or {})
        tags.discard("DEFINE")
    return body, variables, tags


def _overlong(body: str, lines: list[str]) -> bool:
    """Whether a line is longer than :data:`MAX_LINE`. Such a line holds a whole aligned block
    of half that size without a line break, so the lines are measured only if a block has none."""
    half = MAX_LINE // 2
    if all(body.find("\n", at, at + half) != -1 for at in range(0, len(body) - half, half)):
        return False
    return max(map(len, lines)) > MAX_LINE


def _check_shape(body: str, lines: list[str], *, keys: bool = True) -> None:
    """Refuse what no real playlist looks like before anything is minted (so a refused playlist
    teaches the relay nothing): too many lines or keys, an overlong line, a cut-off end."""
    if len(lines) > MAX_LINES:
        raise PlaylistError(f"more than {MAX_LINES} lines")
    if _overlong(body, lines):
        raise PlaylistError(f"a line is longer than {MAX_LINE} characters")
    if keys and body.count("#EXT-X-KEY:") > MAX_KEYS and \
            len({line for line in lines if line.startswith("#EXT-X-KEY:")}) > MAX_KEYS:
        raise PlaylistError(f"more than {MAX_KEYS} distinct keys")
    last = next((line for line in reversed(lines) if line.strip()), "")
    if last.startswith(("#EXTINF:", "#EXT-X-STREAM-INF:")):
        raise PlaylistError("the playlist is cut off (its last tag has no URI after it)")


def _defines(body: str, base: str, variables: dict[str, str], imports: Mapping[str, str]) -> str:
    """Collect EXT-X-DEFINE variables; drop the QUERYPARAM ones (values from the URL)."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(base).query).items()}

    def one(match: re.Match[str]) -> str:
        keep = _define("#EXT-X-DEFINE:" + match[1], variables, query, imports)
        return match[0] if keep else ""

    return _DEFINE.sub(one, body)


def _define(content: str, variables: dict[str, str], query: Mapping[str, str],
            imports: Mapping[str, str]) -> bool:
    """Record an EXT-X-DEFINE; return whether its line stays in the output."""
    attrs = attributes(content[len("#EXT-X-DEFINE:"):])
    if "NAME" in attrs:
        variables[attrs["NAME"]] = attrs.get("VALUE", "")
        return True
    if "IMPORT" in attrs:
        if attrs["IMPORT"] in imports:
            variables[attrs["IMPORT"]] = imports[attrs["IMPORT"]]
        return True
    if "QUERYPARAM" in attrs:
        name = attrs["QUERYPARAM"]
        if name not in query:
            raise PlaylistError(f"QUERYPARAM {name!r} is not in the playlist URL")
        variables[name] = query[name]
        return False
    return True
