"""`memory-bridge setup`: the store and the secret against the sandbox and moto (sam itself is not run here)."""

import io
import json

import boto3
import pytest

from memory_bridge_cli import main as cli
from memory_bridge_cli.deploy import conversations_instructions, sam_commands
from memory_bridge_dev.sandbox import MemorySandbox
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def setup_env(aws_env, monkeypatch, tmp_path):
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=0.6)
    sandbox.serve()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    yield sandbox
    sandbox.close()


def run(sandbox, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["setup", *argv, "--memory-api-url", sandbox.base_url, "--skip-deploy", "--json"], out=out, err=err
    )
    return code, out.getvalue(), err.getvalue()


def test_store_then_secret_and_nothing_secret_printed(setup_env):
    name = f"setup-secret-{id(setup_env)}"
    code, out, err = run(setup_env, "--display-name", "bridge-store", "--secret-name", name)
    assert code == 0, err
    document = json.loads(out)
    assert setup_env.stores[document["storeId"]].status(10**9) == "ACTIVE"
    stored = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    assert stored == {"account_sid": DEV_ACCOUNT_SID, "auth_token": DEV_AUTH_TOKEN}
    assert DEV_AUTH_TOKEN not in out + err
    # Again: the store is reused and the secret gets a new version.
    code, out2, err2 = run(setup_env, "--display-name", "bridge-store", "--secret-name", name)
    assert code == 0
    assert json.loads(out2)["storeId"] == document["storeId"]
    assert "reused" in err2 and "updated" in err2
    assert len(setup_env.requests_to("CreateStore")) == 1


def test_updating_the_secret_keeps_a_rotation_in_progress_and_fields_it_does_not_set(setup_env):
    """Mid-rotation the secret holds previous_auth_token: the webhook still accepts the old token's
    signatures. setup must not drop it (nor anything else it does not set)."""
    name = f"setup-rotation-{id(setup_env)}"
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(
        Name=name,
        SecretString=json.dumps(
            {
                "account_sid": DEV_ACCOUNT_SID,
                "auth_token": "old-token-being-rotated-out",
                "previous_auth_token": "older-token-still-accepted",
                "api_key_sid": "SK" + "1" * 32,
                "api_key_secret": "api-key-secret-value",
                "note": "set by hand",
            }
        ),
    )
    code, out, err = run(setup_env, "--display-name", "bridge-store", "--secret-name", name)
    assert code == 0, err
    stored = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert stored == {
        "account_sid": DEV_ACCOUNT_SID,
        "auth_token": DEV_AUTH_TOKEN,  # what setup sets wins
        "previous_auth_token": "older-token-still-accepted",
        "api_key_sid": "SK" + "1" * 32,
        "api_key_secret": "api-key-secret-value",
        "note": "set by hand",
    }
    assert "kept from the current value: api_key_secret, api_key_sid, note, previous_auth_token" in err
    for value in ("older-token-still-accepted", "api-key-secret-value", DEV_AUTH_TOKEN):
        assert value not in out + err


def test_a_secret_that_is_not_a_json_object_is_left_alone(setup_env):
    name = f"setup-not-json-{id(setup_env)}"
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=name, SecretString="just-a-token")
    code, _, err = run(setup_env, "--display-name", "bridge-store", "--secret-name", name)
    assert code == 1
    assert "does not hold a JSON object" in err and "just-a-token" not in err
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "just-a-token"


def test_a_store_that_fails_is_not_deployed_against(setup_env):
    setup_env.fail_next_store = {
        "type": "PROVISIONING",
        "title": "Provisioning failed",
        "code": 520050,
        "detail": "x",
    }
    name = f"never-written-{id(setup_env)}"
    code, _, err = run(setup_env, "--display-name", "broken-store", "--secret-name", name)
    assert code == 1
    assert "Provisioning failed" in err
    with pytest.raises(boto3.client("secretsmanager").exceptions.ResourceNotFoundException):
        boto3.client("secretsmanager").get_secret_value(SecretId=name)


def test_needs_the_auth_token(setup_env, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    code, _, err = run(setup_env, "--display-name", "x")
    assert code == 2
    assert "TWILIO_AUTH_TOKEN" in err
    assert setup_env.requests == []


def test_sam_commands_carry_the_store_and_secret():
    build, deploy = sam_commands(
        "sam",
        "my-stack",
        "mem_store_x",
        "memory-bridge/twilio",
        "eu-west-1",
        "ops",
        ["AgentIdentities=alice"],
    )
    assert build == ["sam", "build"]
    assert deploy[:4] == ["sam", "deploy", "--stack-name", "my-stack"]
    assert "MemoryStoreId=mem_store_x" in deploy and "TwilioCredentialsSecret=memory-bridge/twilio" in deploy
    assert "AgentIdentities=alice" in deploy
    assert deploy[-4:] == ["--region", "eu-west-1", "--profile", "ops"]


def test_instructions_name_the_post_event_hook_and_filter():
    text = conversations_instructions(
        "https://x.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"
    )
    assert "Post-event URL" in text and "onMessageAdded" in text and "pre-event" in text


def test_without_aws_credentials_nothing_is_created_in_memory(setup_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run(setup_env, "--display-name", "never-made", "--secret-name", "never-made")
    assert code == 2
    assert "no AWS credentials" in err and "Nothing was created" in err
    assert setup_env.requests_to("CreateStore") == []
    assert setup_env.requests_to("ListStores") == []


def test_without_sam_nothing_is_created_in_memory(setup_env, monkeypatch):
    monkeypatch.setattr("memory_bridge_cli.deploy.PROJECT_ROOT", __import__("pathlib").Path("/nonexistent"))
    monkeypatch.setenv("PATH", "/nonexistent")
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["setup", "--display-name", "never-made", "--memory-api-url", setup_env.base_url], out=out, err=err
    )
    assert code == 2
    assert "aws-sam-cli not found" in err.getvalue()
    assert setup_env.requests_to("CreateStore") == []
