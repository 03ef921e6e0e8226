"""SigV4 for the lean AWS client (memory_bridge.adapters.aws_json): credentials, endpoints, signature.

Credentials come from the environment (Lambda's), else from botocore's own chain (a profile, SSO, the
container endpoint that SnapStart uses), refreshed by it; the endpoint from AWS_ENDPOINT_URL_<SERVICE> /
AWS_ENDPOINT_URL, else the regional one: where botocore finds them.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from memory_bridge.adapters.aws_errors import AwsError


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print a secret by accident
        return f"AwsCredentials(access_key={self.access_key[:4]}…)"


def credentials_source(env: Mapping[str, str] | None = None) -> Callable[[], AwsCredentials]:
    """Lambda's credentials (the environment); elsewhere botocore's chain, which refreshes them."""
    env = os.environ if env is None else env
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        fixed = AwsCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
        return lambda: fixed
    import botocore.session  # not in Lambda's usual case: only without credentials in the environment

    resolved = botocore.session.get_session().get_credentials()
    if resolved is None:
        raise AwsError("NoCredentials", "no AWS credentials found")

    def frozen() -> AwsCredentials:
        now = resolved.get_frozen_credentials()
        return AwsCredentials(str(now.access_key), str(now.secret_key), now.token or None)

    return frozen


def region_from(env: Mapping[str, str]) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint_for(service: str, env_suffix: str, region: str, env: Mapping[str, str]) -> str:
    """AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL (as botocore reads them), else the regional one."""
    configured = env.get(f"AWS_ENDPOINT_URL_{env_suffix}") or env.get("AWS_ENDPOINT_URL")
    if configured:
        return configured.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign(
    *,
    host: str,
    body: bytes,
    headers: Mapping[str, str],
    region: str,
    service: str,
    credentials: AwsCredentials,
    now: datetime.datetime,
) -> dict[str, str]:
    """SigV4 headers for a POST to "/" with no query: X-Amz-Date, the token if any, Authorization.

    `headers` are the others to sign (Content-Type, X-Amz-Target); Host is signed as given."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {"host": host, "x-amz-date": amz_date, **{k.lower(): v.strip() for k, v in headers.items()}}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + credentials.secret_key).encode("utf-8"), day), region), service),
        "aws4_request",
    )
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out = {
        "X-Amz-Date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}",
    }
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    return out
