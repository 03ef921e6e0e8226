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


def compute_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """Signature Twilio would send for `url` and the POST `params` (repeated names kept)."""
    # Sorted by name, and every value of a repeated name sorted too; no separators, nothing encoded.
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


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
    Every comparison is constant-time.
    """
    if not signature or not auth_tokens:
        return False
    expected = signature.encode("utf-8")
    matched = False
    for candidate in urls:
        body_hash = _body_sha256_param(candidate)
        if body_hash is not None:
            actual_hash = hashlib.sha256(raw_body).hexdigest()
            if not hmac.compare_digest(body_hash.lower().encode(), actual_hash.encode()):
                continue
            signed_params: Sequence[tuple[str, str]] = ()
        else:
            signed_params = params
        for variant in url_variants(candidate):
            for token in auth_tokens:
                computed = compute_signature(variant, signed_params, token).encode("ascii")
                # Keep comparing after a match so timing does not reveal which variant matched.
                matched |= hmac.compare_digest(computed, expected)
    return matched
