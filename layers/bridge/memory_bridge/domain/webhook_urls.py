"""The URL(s) Twilio may have signed, rebuilt from an API Gateway proxy event. Pure.

An HTTP API (payload v2) event keeps the query as it was sent. A REST API (payload v1) event holds
it decoded and grouped per key, so the query Twilio signed is rebuilt in a bounded set of forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any
from urllib.parse import quote, quote_plus

# A REST API (v1) event holds the query decoded; the URL Twilio signed is rebuilt in at most this many
# forms, so that a forged request costs bounded work (see _query_candidates).
MAX_URL_CANDIDATES = 64
# Up to this many keys with an empty value, every mix of `key` and `key=` is tried too.
MAX_MIXED_BARE_KEYS = 3
# Above this many query parameters, only the grouped and round-robin orders of repeated keys are tried.
MAX_INTERLEAVED_PARAMS = 64

# Characters RFC 3986 allows unencoded in a query that do not delimit a pair: a URL typed by hand
# (`?tenant=acme,eu`) keeps them literal. `=` is kept too inside a value (`?token=abc==`).
_QUERY_LITERAL = "!$'()*,;:@/?"
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


@dataclass(frozen=True)
class _QueryStyle:
    key_safe: str
    value_safe: str
    plus_for_space: bool

    def encode(self, text: str, safe: str, cache: dict[tuple[str, str, bool], str]) -> str:
        if _UNRESERVED.fullmatch(text):  # the same in every style
            return text
        key = (text, safe, self.plus_for_space)
        if key not in cache:
            cache[key] = quote_plus(text, safe=safe) if self.plus_for_space else quote(text, safe=safe)
        return cache[key]


# How the query may have been written, applied to every pair alike; the first is what urlencode gives.
_QUERY_STYLES = (
    _QueryStyle("", "", plus_for_space=True),  # urlencode / quote_plus: `a+b%2Cc`
    _QueryStyle("", "", plus_for_space=False),  # quote(safe=""): `a%20b%2Cc`
    _QueryStyle(_QUERY_LITERAL, _QUERY_LITERAL + "=", plus_for_space=False),  # as typed: `a%20b,c`
    _QueryStyle(_QUERY_LITERAL, _QUERY_LITERAL + "=", plus_for_space=True),  # as typed: `a+b,c`
    _QueryStyle("!'()*", "!'()*", plus_for_space=False),  # JavaScript encodeURIComponent
)


def _decoded_query(event: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The v1 query as API Gateway hands it over: decoded, each key once (first-appearance order)
    with its values in order. Only the single-value map (last value per key) when that is all there is."""
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, Mapping) and multi:
        groups = []
        for key, values in multi.items():
            if isinstance(values, list | tuple):
                kept = [str(v) for v in values if v is not None]
            else:
                kept = [] if values is None else [str(values)]
            groups.append((str(key), kept or [""]))
        return groups
    single = event.get("queryStringParameters")
    if isinstance(single, Mapping):
        return [(str(k), ["" if v is None else str(v)]) for k, v in single.items()]
    return []


def _merges(sizes: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every order of the pairs (as key indices) that keeps each key's values in order and each key's
    first appearance in map order, the grouped order first. Iterative: no recursion limit, no dead ends."""
    total = sum(sizes)
    remaining = list(sizes)
    order: list[int] = []
    started = 0  # keys 0..started-1 have appeared
    low = 0  # smallest key index still to try at the current depth
    while True:
        choice = None
        if len(order) == total:
            yield tuple(order)
        else:
            for index in range(low, min(started + 1, len(sizes))):
                if remaining[index]:
                    choice = index
                    break
        if choice is not None:
            order.append(choice)
            remaining[choice] -= 1
            if choice == started:
                started += 1
            low = 0
            continue
        if not order:
            return
        last = order.pop()
        remaining[last] += 1
        if remaining[last] == sizes[last]:  # its first appearance was just undone
            started -= 1
        low = last + 1


def _round_robin(sizes: Sequence[int]) -> tuple[int, ...]:
    """One value of each key in turn (`a=1&b=2&a=3&b=4`), keys in map order."""
    order: list[int] = []
    for round_ in range(max(sizes, default=0)):
        order.extend(index for index, size in enumerate(sizes) if size > round_)
    return tuple(order)


def _orders(sizes: Sequence[int]) -> Iterator[tuple[int, ...]]:
    grouped = tuple(index for index, size in enumerate(sizes) for _ in range(size))
    yield grouped
    if all(size == 1 for size in sizes):
        return  # no repeated key: the map order is the only order
    yield _round_robin(sizes)
    if sum(sizes) <= MAX_INTERLEAVED_PARAMS:
        yield from _merges(sizes)


def _render(
    groups: Sequence[tuple[str, Sequence[str]]],
    style: _QueryStyle,
    bare_keys: frozenset[int],
    cache: dict[tuple[str, str, bool], str],
) -> list[list[str]]:
    """Each key's pairs encoded in `style`; empty values of `bare_keys` written as the bare key."""
    rendering = []
    for index, (key, values) in enumerate(groups):
        name = style.encode(key, style.key_safe, cache)
        bare = index in bare_keys
        rendering.append(
            [name if bare and not v else f"{name}={style.encode(v, style.value_safe, cache)}" for v in values]
        )
    return rendering


def _bare_key_forms(
    groups: Sequence[tuple[str, Sequence[str]]],
) -> tuple[list[frozenset[int]], list[frozenset[int]]]:
    """Which keys with an empty value are written bare (`key`, not `key=`): the same for all such keys
    (the likelier forms), then, for up to MAX_MIXED_BARE_KEYS such keys, each mix of the two."""
    empty_keys = [i for i, (_, values) in enumerate(groups) if any(v == "" for v in values)]
    uniform: list[frozenset[int]] = [frozenset()]
    if empty_keys:
        uniform.append(frozenset(empty_keys))
    mixed: list[frozenset[int]] = []
    if len(empty_keys) <= MAX_MIXED_BARE_KEYS:
        mixed = [frozenset(c) for n in range(1, len(empty_keys)) for c in combinations(empty_keys, n)]
    return uniform, mixed


def _renderings(
    groups: Sequence[tuple[str, Sequence[str]]],
    forms: Sequence[frozenset[int]],
    cache: dict[tuple[str, str, bool], str],
) -> list[list[list[str]]]:
    """Each of `forms` in each encoding style, each distinct rendering once."""
    renderings: list[list[list[str]]] = []
    for bare_keys in forms:
        for style in _QUERY_STYLES:
            rendering = _render(groups, style, bare_keys, cache)
            if rendering not in renderings:  # styles agree on plain text: join each form once
                renderings.append(rendering)
    return renderings


def _joined(order: Sequence[int], rendering: Sequence[Sequence[str]]) -> str:
    """The query string of `rendering`'s pairs taken in `order` (key indices)."""
    taken = [0] * len(rendering)
    parts = []
    for index in order:
        parts.append(rendering[index][taken[index]])
        taken[index] += 1
    return "&".join(parts)


def _query_candidates(groups: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The query strings Twilio may have signed for a decoded v1 query, most likely first, at most
    MAX_URL_CANDIDATES: every order of repeated keys that keeps each key's values in order, times
    each encoding style (applied to every pair), times `key` or `key=` for empty values (for all
    keys alike first; then, for up to MAX_MIXED_BARE_KEYS such keys, each mix of the two)."""
    if not groups:
        return [""]
    sizes = [len(values) for _, values in groups]
    cache: dict[tuple[str, str, bool], str] = {}  # keys and values repeat: quote each text once
    candidates: dict[str, None] = {}
    # Every order with the likelier forms first, then every order again with mixed empty forms.
    for forms in _bare_key_forms(groups):
        renderings = _renderings(groups, forms, cache)
        if not renderings:
            continue
        for order in _orders(sizes):
            for rendering in renderings:
                candidates.setdefault(_joined(order, rendering))
                if len(candidates) >= MAX_URL_CANDIDATES:
                    return list(candidates)
    return list(candidates)


def _rebuilt_queries(event: Mapping[str, Any]) -> list[str]:
    if "rawQueryString" in event:  # v2 keeps the query as it was sent
        return [str(event.get("rawQueryString") or "")]
    return _query_candidates(_decoded_query(event))


def reconstructed_urls(event: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[str, ...]:
    """The URLs Twilio may have called, most likely first. `headers` have lower-case names."""
    context = event.get("requestContext") or {}
    host = headers.get("host") or context.get("domainName") or "localhost"
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    if "rawPath" in event:  # v2: the raw path includes the stage unless it is $default
        path = str(event.get("rawPath") or "/")
    elif context.get("path"):  # v1: requestContext.path is what the caller saw, stage included
        path = str(context["path"])
    else:
        stage = context.get("stage")
        path = str(event.get("path") or "/")
        if stage and stage != "$default" and not path.startswith(f"/{stage}/"):
            path = f"/{stage}{path}"
    base = f"{scheme}://{host}{path}"
    return tuple(base + (f"?{query}" if query else "") for query in _rebuilt_queries(event))
