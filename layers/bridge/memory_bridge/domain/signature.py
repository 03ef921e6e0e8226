"""X-Twilio-Signature for form-encoded webhooks: HMAC-SHA1 over URL + sorted params, base64.

Pure stdlib. Follows Twilio's published algorithm and its validators' tolerance of the default
port (`:443` / `:80`) being present or absent in the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}

# Bytes HMAC'd per check beyond the first candidate URL. A REST API event yields up to 64 candidate
# URLs; each is hashed with the params once per port form and token. 16 MiB covers 64 candidates x
# 2 port forms x 2 tokens for 64 KiB of fields, more than a Conversations webhook carries, and keeps
# a forged request with a huge body to the cost of the first candidate (as when there was only one).
MAX_HASHED_BYTES = 16 * 1024 * 1024


def _signed_fields(params: Iterable[tuple[str, str]]) -> bytes:
    # Sorted by name, and every value of a repeated name sorted too; no separators, nothing encoded.
    return "".join(name + value for name, value in sorted(params)).encode("utf-8")


def _sign(url: str, fields: bytes, key: bytes) -> bytes:
    mac = hmac.new(key, url.encode("utf-8"), hashlib.sha1)
    mac.update(fields)
    return base64.b64encode(mac.digest())


def compute_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """Signature Twilio would send for `url` and the POST `params` (repeated names kept)."""
    return _sign(url, _signed_fields(params), auth_token.encode("utf-8")).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, plus the form with the default port added or removed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL urllib can read (a forged Host or path): only the exact form
        return [url]
    default_port = _DEFAULT_PORTS.get(parts.scheme.lower())
    variants = [url]
    if default_port is None or not parts.hostname:
        return variants
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if port is None:
        netloc = f"{prefix}{host}:{default_port}"
    elif port == default_port:
        netloc = f"{prefix}{host}"
    else:
        return variants
    variants.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    return variants


def _body_sha256_param(url: str) -> str | None:
    if "bodySHA256" not in url:  # Twilio appends the name as is; skip parsing long queries for nothing
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "bodySHA256":
            return value
    return None


def is_valid_signature(
    *,
    urls: Sequence[str],
    params: Sequence[tuple[str, str]],
    raw_body: bytes,
    signature: str | None,
    auth_tokens: Sequence[str],
) -> bool:
    """True when `signature` matches any candidate URL (and its port variants) under any token.

    JSON-bodied webhooks carry `bodySHA256` in the URL and sign the URL alone; that form is checked too.
    Every comparison is constant-time. Candidates after the first are checked while the bytes hashed
    stay within MAX_HASHED_BYTES, so a forged request costs bounded work whatever its size.
    """
    if not signature or not auth_tokens:
        return False
    expected = signature.encode("utf-8")
    keys = [token.encode("utf-8") for token in auth_tokens]
    fields = _signed_fields(params)
    body_hash: bytes | None = None
    hashed = 0
    matched = False
    for position, candidate in enumerate(urls):
        claimed_hash = _body_sha256_param(candidate)
        if claimed_hash is not None:
            if body_hash is None:
                body_hash = hashlib.sha256(raw_body).hexdigest().encode()
            if not hmac.compare_digest(claimed_hash.lower().encode(), body_hash):
                continue
            signed_fields = b""
        else:
            signed_fields = fields
        variants = url_variants(candidate)
        cost = sum(len(v.encode("utf-8")) + len(signed_fields) for v in variants) * len(keys)
        if position and hashed + cost > MAX_HASHED_BYTES:
            break
        hashed += cost
        for variant in variants:
            for key in keys:
                # Keep comparing after a match so timing does not reveal which variant matched.
                matched |= hmac.compare_digest(_sign(variant, signed_fields, key), expected)
    return matched
