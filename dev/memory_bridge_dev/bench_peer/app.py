"""The webhook a team would write for the same job, as `make bench`'s yardstick. Dev-only.

Twilio's SDK validates the signature, `requests` talks to Memory, the boto3 clients are made at
import and the secret is read there and cached. Every message costs a profile Lookup (a Create
when there is none) and one observation POST. No idempotency, no deadline, no redaction: a
failure parks the raw message on the queue, and Twilio's retry of a message that was posted
posts it again.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import parse_qsl

import boto3
import requests
from twilio.request_validator import RequestValidator

secrets = boto3.client("secretsmanager")
sqs = boto3.client("sqs")
SECRET = json.loads(
    secrets.get_secret_value(SecretId=os.environ["TWILIO_CREDENTIALS_SECRET"])["SecretString"]
)
validator = RequestValidator(SECRET["auth_token"])
http = requests.Session()
http.auth = (SECRET["account_sid"], SECRET["auth_token"])
STORE = os.environ["MEMORY_STORE_ID"]
BASE = os.environ["MEMORY_API_BASE_URL"].rstrip("/") + f"/v1/Stores/{STORE}/Profiles"
QUEUE = os.environ["DEAD_LETTER_QUEUE_URL"]
SOURCE = os.environ.get("OBSERVATION_SOURCE", "twilio-conversations")


def answer(status: int, outcome: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"outcome": outcome}),
    }


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    params = dict(parse_qsl(body, keep_blank_values=True))
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    url = f"https://{headers.get('host')}{event['requestContext']['path']}"
    if not validator.validate(url, params, headers.get("x-twilio-signature", "")):
        return answer(403, "forbidden")
    if params.get("EventType") != "onMessageAdded":
        return answer(200, "ignored")
    author = params.get("Author", "")
    if author.startswith("whatsapp:"):
        identifier = {"idType": "phone", "value": author.removeprefix("whatsapp:")}
    elif author.startswith("+"):
        identifier = {"idType": "phone", "value": author}
    elif "@" in author:
        identifier = {"idType": "email", "value": author}
    else:
        identifier = {"idType": "chat_identity", "value": author}
    try:
        found = http.post(f"{BASE}/Lookup", json=identifier, timeout=3).json().get("profiles") or []
        if found:
            profile = found[0]
        else:
            created = http.post(
                BASE, json={"traits": {"Contact": {identifier["idType"]: identifier["value"]}}}, timeout=3
            )
            profile = created.json()["id"]
        observation = {
            "content": params.get("Body", ""),
            "source": SOURCE,
            "occurredAt": params["DateCreated"],
        }
        posted = http.post(f"{BASE}/{profile}/Observations", json={"observations": [observation]}, timeout=3)
        posted.raise_for_status()
    except (requests.RequestException, KeyError, ValueError) as error:
        sqs.send_message(QueueUrl=QUEUE, MessageBody=json.dumps(params))
        print(json.dumps({"level": "ERROR", "message": "parked", "error": type(error).__name__}))
        return answer(200, "parked")
    print(json.dumps({"level": "INFO", "message": "posted", "message_sid": params.get("MessageSid")}))
    return answer(200, "posted")
