"""Content negotiation: which of the media types a server can send the client's ``Accept`` prefers.

RFC 9110 (section 12.5.1): each offered type takes the quality of the most specific media range that
matches it (``type/subtype`` over ``type/*`` over ``*/*``); ``q=0`` refuses it. Among equal
qualities the range the client listed first wins, then the server's order of preference, so that
``*/*`` (and a missing header) gets the server's first choice.

>>> offered = ("application/json", "application/graphql-response+json")
>>> negotiate("application/graphql-response+json, application/json;q=0.9", offered)
'application/graphql-response+json'
>>> negotiate("*/*", offered), negotiate(None, offered)
('application/json', 'application/json')
>>> negotiate("text/html, application/*;q=0.1", offered)
'application/json'
>>> negotiate("application/json;q=0, text/html", offered) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["MediaRange", "negotiate", "parse_accept"]


class MediaRange(NamedTuple):
    """One entry of an ``Accept`` header: ``type/subtype`` (either may be ``*``), its quality and
    its position in the header."""

    type: str
    subtype: str
    q: float
    position: int

    def matches(self, media_type: str) -> bool:
        kind, _, sub = media_type.partition("/")
        return self.type in ("*", kind) and self.subtype in ("*", sub)

    @property
    def specificity(self) -> int:
        """2 for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``."""
        return (self.type != "*") + (self.subtype != "*")


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of ``header``; an entry that does not parse is skipped, a bad ``q`` is 1.

    >>> [(r.type, r.subtype, r.q) for r in parse_accept("text/html, */*;q=0.8, nonsense, a/b;q=x")]
    [('text', 'html', 1.0), ('*', '*', 0.8), ('a', 'b', 1.0)]
    """
    ranges = []
    for position, entry in enumerate(header.split(",")):
        media, *params = (part.strip() for part in entry.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not (kind and slash and sub):
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 1.0
        ranges.append(MediaRange(kind, sub, q, position))
    return ranges


def negotiate(header: str | None, offered: Sequence[str]) -> str | None:
    """The type of ``offered`` (the server's order of preference) that ``header`` prefers, or
    ``None`` when it accepts none of them. A missing or empty header accepts anything."""
    ranges = parse_accept(header) if header and header.strip() else [MediaRange("*", "*", 1.0, 0)]
    best: tuple[float, int, int] | None = None
    chosen = None
    for preference, media_type in enumerate(offered):
        matching = [r for r in ranges if r.matches(media_type)]
        if not matching:
            continue
        rule = max(matching, key=lambda r: (r.specificity, -r.position))
        if rule.q <= 0:
            continue
        rank = (rule.q, -rule.position, -preference)
        if best is None or rank > best:
            best, chosen = rank, media_type
    return chosen
