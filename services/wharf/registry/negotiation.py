"""Content negotiation for manifest GETs: does the client's `Accept` admit a stored type?

Wharf never rewrites a manifest: it serves the stored bytes when the client accepts their media
type or states no preference, and otherwise answers 404 (as distribution does for an OCI
manifest asked for by a client that does not list OCI types).

`Accept` follows RFC 9110: a comma-separated list of media ranges (`type/subtype`, `type/*`,
`*/*`) with optional parameters, of which `q` weights the range; `q=0` means "not acceptable".
Several `Accept` headers are one list. Matching is case-insensitive; the most specific range
that matches decides the weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    subtype: str
    quality: float

    @property
    def specificity(self) -> int:
        return (self.type != "*") + (self.subtype != "*")

    def matches(self, media_type: str) -> bool:
        kind, _, sub = media_type.lower().partition("/")
        return self.type in ("*", kind) and self.subtype in ("*", sub)


def parse_accept(values: Iterable[str]) -> list[MediaRange]:
    """Every well-formed media range of the `Accept` headers; malformed entries are ignored,
    as a lenient server must (clients send odd things: `*`, empty items, bad `q` values)."""
    ranges: list[MediaRange] = []
    for value in values:
        for item in value.split(","):
            media, *params = (part.strip() for part in item.split(";"))
            kind, slash, sub = media.lower().partition("/")
            if not slash or not kind or not sub or (kind == "*" and sub != "*"):
                continue
            ranges.append(MediaRange(kind, sub, _quality(params)))
    return ranges


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 1.0
            return min(max(quality, 0.0), 1.0)
    return 1.0


def accepts(accept_headers: Iterable[str], media_type: str) -> bool:
    """Whether a client sending `accept_headers` takes `media_type`. No header, or only
    malformed ones, is no preference: anything goes."""
    ranges = parse_accept(accept_headers)
    if not ranges:
        return True
    matching = [r for r in ranges if r.matches(media_type)]
    if not matching:
        return False
    best = max(matching, key=lambda r: r.specificity)
    return best.quality > 0
