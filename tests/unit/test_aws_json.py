"""The lean AWS client (memory_bridge.adapters.aws_json): its SigV4 signature is botocore's, and it finds
its endpoints where botocore does."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from memory_bridge.adapters.aws_sigv4 import AwsCredentials, endpoint_for, sign


@pytest.mark.parametrize("token", [None, "session/token=="])
@pytest.mark.parametrize("host", ["127.0.0.1:5000", "dynamodb.eu-west-1.amazonaws.com"])
def test_signature_is_the_one_botocore_computes(token, host):
    body = b'{"TableName":"t","Key":{"id":{"S":"message#IM1"}}}'
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.UpdateItem"}
    request = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers=dict(headers))
    SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), "dynamodb", "eu-west-1").add_auth(
        request
    )
    when = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    mine = sign(
        host=host,
        body=body,
        headers=headers,
        region="eu-west-1",
        service="dynamodb",
        credentials=AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token),
        now=when,
    )
    assert mine["Authorization"] == request.headers["Authorization"]
    assert mine.get("X-Amz-Security-Token") == token


def test_endpoints_follow_botocores_variables():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000/", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:6000"}
    assert endpoint_for("sqs", "SQS", "us-east-1", env) == "http://127.0.0.1:6000"
    assert endpoint_for("dynamodb", "DYNAMODB", "us-east-1", env) == "http://127.0.0.1:5000"
    assert endpoint_for("dynamodb", "DYNAMODB", "eu-west-1", {}) == "https://dynamodb.eu-west-1.amazonaws.com"
    assert endpoint_for("sqs", "SQS", "cn-north-1", {}) == "https://sqs.cn-north-1.amazonaws.com.cn"
