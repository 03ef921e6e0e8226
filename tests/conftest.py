"""Fixtures shared by the integration and end-to-end tiers: moto's server and the Memory sandbox,
both real HTTP servers on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from memory_bridge_dev.parking import free_port

__all__ = ["free_port"]  # the e2e tests import it from here


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from memory_bridge_dev import moto_speedups

    moto_speedups.apply()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (and so Powertools) at moto's server, with dummy credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


def pytest_report_header() -> str:
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
    spec = os.path.join(shared, "twilio-memory-v1.yaml")
    return f"Memory API contract: {'found' if os.path.exists(spec) else 'absent (contract tests skip)'} at {spec}"
