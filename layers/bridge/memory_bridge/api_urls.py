"""Where a Twilio API may be reached: every call carries the credentials (Memory and Conversations)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# Where Memory may be: https:// anywhere, plain http:// only to this machine (the sandbox, a local
# proxy), since the Basic authorization header carries the account SID and auth token in the clear.
# template.yaml's MemoryApiBaseUrl has this same pattern (a test holds them equal). No userinfo (`@`),
# backslash or whitespace: where URL parsers disagree about the host, a loopback URL could reach another.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
MEMORY_API_URL_PATTERN = re.compile(
    r"^(https://[^/?#@\s\\]+"
    rf"|http://(localhost|127\.{_OCTET}\.{_OCTET}\.{_OCTET}|\[::1\])(:[0-9]{{1,5}})?)"
    r"([/?#][^\s\\]*)?$"
)
MEMORY_API_URL_RULE = (
    "https://, or http:// only to loopback (localhost, 127.x.x.x, [::1]): every call carries the credentials"
)


def require_api_url(name: str, value: str) -> None:
    """Memory's base URL, where every call carries the credentials: https://, or http:// to loopback.
    `name` is where the value came from (a variable, a CLI option), for the error."""
    parts = urlsplit(value) if MEMORY_API_URL_PATTERN.match(value) else None
    # The pattern alone is what the template can hold; the parser's view of the host is checked too.
    if parts is None or (parts.scheme == "http" and not _is_loopback(parts.hostname or "")):
        raise ValueError(f"{name} must be an absolute URL, {MEMORY_API_URL_RULE}; got {value!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
