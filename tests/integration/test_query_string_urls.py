"""Webhook URLs with a query string, through the real handler, moto's server and the Memory sandbox.

Twilio signs the URL exactly as configured. A REST API (v1) event hands the query over decoded and
grouped per key; an HTTP API (v2) event keeps it raw. Both must verify, with no PUBLIC_WEBHOOK_URL.
"""

import json

import pytest

from tests.integration.conftest import outcome
from tests.support import WEBHOOK_URL, message_params, signed_event

pytestmark = pytest.mark.integration

QUERIES = ["?tenant=acme,eu", "?debug", "?a=1&b=2&a=3", "?q=a%20b%2Fc"]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("query", QUERIES)
def test_signed_webhook_with_a_query_string_is_posted(bridge, query, version):
    assert "PUBLIC_WEBHOOK_URL" not in bridge.env
    body = f"Order for {query}"
    event = signed_event(message_params(body=body), url=WEBHOOK_URL + query, version=version)
    if version == 1:  # what API Gateway hands over: the query decoded, no raw string
        assert "rawQueryString" not in event
        assert event["multiValueQueryStringParameters"]
    response = bridge.invoke(event)
    assert response["statusCode"] == 200, response
    assert outcome(response) == "posted"
    [observation] = bridge.observations()
    assert observation["content"] == body
    assert bridge.parked() == []


def test_rest_event_decodes_the_query_like_api_gateway(bridge):
    event = signed_event(message_params(), url=WEBHOOK_URL + "?tenant=acme,eu&debug&a=1&q=a%20b%2Fc&a=3")
    assert event["multiValueQueryStringParameters"] == {
        "tenant": ["acme,eu"],
        "debug": [""],
        "a": ["1", "3"],
        "q": ["a b/c"],
    }
    assert event["queryStringParameters"] == {"tenant": "acme,eu", "debug": "", "a": "3", "q": "a b/c"}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("query", QUERIES)
def test_wrong_token_with_a_query_string_is_still_rejected(bridge, query, version):
    event = signed_event(message_params(), url=WEBHOOK_URL + query, version=version, token="forged")
    response = bridge.invoke(event)
    assert response["statusCode"] == 403
    assert outcome(response) == "forbidden"
    assert bridge.observations() == []
    assert bridge.parked() == []


def test_tampered_query_value_is_rejected(bridge):
    event = signed_event(message_params(), url=WEBHOOK_URL + "?tenant=acme,eu")
    event["multiValueQueryStringParameters"] = {"tenant": ["acme,us"]}
    event["queryStringParameters"] = {"tenant": "acme,us"}
    assert bridge.invoke(event)["statusCode"] == 403
    assert bridge.observations() == []


@pytest.mark.parametrize("version", [1, 2])
def test_signed_date_without_a_utc_equivalent_is_malformed_and_goes_nowhere(bridge, version):
    params = message_params(date_created="0001-01-01T00:00:00+01:00")
    response = bridge.invoke(signed_event(params, url=WEBHOOK_URL + "?tenant=acme,eu", version=version))
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"outcome": "malformed", "error": "DateCreated is out of range"}
    assert bridge.observations() == []
    assert bridge.sandbox.requests_to("CreateProfileObservation") == []
    assert bridge.parked() == []
