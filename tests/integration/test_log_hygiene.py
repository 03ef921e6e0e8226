"""Every log line of a full run (success, each fault, replay) holds no token, key, body or phone number."""

import io
import re

import pytest

from memory_bridge import runtime
from memory_bridge.runtime import logger
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module
from memory_bridge_dev.sandbox import Fault
from tests.support import DEV_AUTH_TOKEN, message_params, signed_event

pytestmark = pytest.mark.integration
REPLAY = load_handler_module("functions/replay/app.py", "replay_app_logs")
SECRET_BODY = "my secret card ends 4242 and my address is 1 Main St"
PHONE = "+15555550199"


def test_no_secrets_or_personal_data_in_logs(bridge, monkeypatch):
    captured = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", captured)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    logger.setLevel("DEBUG")
    sandbox = bridge.sandbox
    try:
        bridge.send(message_params(message_sid="IM1", author=PHONE, body=SECRET_BODY))  # posted
        for sid, fault in [
            ("IM2", Fault(status=503)),
            ("IM3", Fault(status=429, retry_after=30)),
            ("IM4", Fault(drop="before")),
            ("IM5", Fault(latency=1.5)),
        ]:
            sandbox.add_fault(fault)
            bridge.send(message_params(message_sid=sid, author=PHONE, body=SECRET_BODY))
            sandbox.clear_faults()
        bridge.send(message_params(message_sid="IM6", author="dana@example.com", body=SECRET_BODY))
        bridge.invoke(signed_event(message_params(message_sid="IM7", author=PHONE), token="wrong"))  # 403
        bridge.send([p for p in message_params(author=PHONE) if p[0] != "MessageSid"])  # 400
        bridge.send(message_params(message_sid="IM1", author=PHONE, body=SECRET_BODY))  # duplicate
        sandbox.credentials = {"AC00000000000000000000000000000000": "other-token-9f8e7d"}
        bridge.send(message_params(message_sid="IM8", author=PHONE, body=SECRET_BODY))  # 401 → parked
        sandbox.credentials = None
        monkeypatch.setenv("MEMORY_STORE_ID", "bad")
        runtime.reset()
        bridge.send(message_params(message_sid="IM9", author=PHONE, body=SECRET_BODY))  # config error
        monkeypatch.setenv("MEMORY_STORE_ID", bridge.store_id)
        runtime.reset()
        REPLAY.lambda_handler({"kind": "all"}, LocalLambdaContext("ReplayFunction", 900))
    finally:
        logger.setLevel("INFO")
    logs = captured.getvalue()
    assert logs.count("\n") >= 10  # the run did log
    for forbidden in (
        DEV_AUTH_TOKEN,
        "other-token-9f8e7d",
        SECRET_BODY,
        "4242",
        PHONE,
        "5555550199",
        "dana@example.com",
    ):
        assert forbidden not in logs, forbidden
    assert not re.search(r"\+1\d{10}", logs)
    assert "Basic " not in logs
