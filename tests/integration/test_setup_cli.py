"""`memory-bridge setup`: the store, its identity resolution, the secret and the Conversations webhook
against the Memory and Conversations sandboxes and moto (sam itself is a stub here)."""

import io
import json
import stat

import boto3
import pytest

from memory_bridge_cli import main as cli
from memory_bridge_cli.deploy import sam_commands, summary
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.sandbox import MemorySandbox
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration

# The post-event filters setup subscribes the bridge to (memory_bridge.domain.events.WEBHOOK_FILTERS).
FILTERS = ["onMessageAdded", "onMessageUpdated", "onMessageRemoved"]


@pytest.fixture
def setup_env(aws_env, monkeypatch, tmp_path):
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=0.6)
    sandbox.serve()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    monkeypatch.delenv("CONVERSATIONS_API_BASE_URL", raising=False)
    yield sandbox
    sandbox.close()


@pytest.fixture
def conversations():
    sandbox = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    sandbox.serve()
    yield sandbox
    sandbox.close()


HOOK = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"


def run_full(memory, conversations, *argv, deploy=False):
    """setup with the webhook step: against both sandboxes, the URL given (or the stack's)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "setup",
        *argv,
        "--memory-api-url",
        memory.base_url,
        "--conversations-api-url",
        conversations.base_url,
        "--json",
        *([] if deploy else ["--skip-deploy"]),
    ]
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


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


def test_the_summary_names_the_webhook_or_why_it_was_left():
    done = {
        "storeId": "mem_store_x",
        "secretArn": "arn:x",
        "webhookUrl": HOOK,
        "webhook": {"scope": "the account-level configuration", "filters": ["onMessageAdded"]},
    }
    assert f"post-event webhook → {HOOK}, POST, onMessageAdded" in summary(done)
    left = {"storeId": "mem_store_x", "secretArn": "arn:x", "webhookSkipped": "--skip-deploy and no stack"}
    assert "Conversations webhook not configured: --skip-deploy and no stack" in summary(left)


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


# ---- identity resolution -------------------------------------------------------------------------


def test_identity_resolution_gains_the_bridges_types_and_a_second_run_changes_nothing(setup_env):
    code, out, err = run(setup_env, "--display-name", "id-store", "--secret-name", f"id-{id(setup_env)}")
    assert code == 0, err
    store = json.loads(out)["storeId"]
    settings = setup_env.identity_settings(store)
    configs = {c["idType"]: c for c in settings["identifierConfigs"]}
    assert configs["chat_identity"] == {
        "idType": "chat_identity",
        "matchingAlgo": "exact",
        "normalization": "trim",
        "enforceUnique": True,
    }
    assert [configs[t]["normalization"] for t in ("email", "whatsapp", "phone")] == ["email", "trim", "phone"]
    assert settings["matchingRules"] == [
        "email",
        "whatsapp",
        "phone",
        "chat_identity",
    ]  # appended, kept first
    assert len(setup_env.requests_to("UpdateIdentityResolutionSettings")) == 1
    assert "added chat_identity (trim)" in err
    assert json.loads(out)["identity"]["added"] == ["chat_identity"]
    # The store now answers a web-chat customer's Lookup.
    assert setup_env.profile_for(store, "chat_identity", "dave") is None

    code, out, err = run(setup_env, "--display-name", "id-store", "--secret-name", f"id-{id(setup_env)}")
    assert code == 0, err
    assert "already covers phone, whatsapp, email, chat_identity: unchanged" in err
    assert json.loads(out)["identity"]["added"] == []
    assert len(setup_env.requests_to("UpdateIdentityResolutionSettings")) == 1  # nothing sent the second time


def test_what_the_operator_configured_is_kept_and_the_chat_id_type_parameter_is_followed(setup_env):
    store = setup_env.seed_store("kept-store", id_types={"email": "none", "loyalty_id": "trim"})
    code, out, err = run(
        setup_env,
        "--display-name",
        "kept-store",
        "--secret-name",
        f"kept-{id(setup_env)}",
        "--parameter",
        "ChatIdType=web_chat",
    )
    assert code == 0, err
    assert json.loads(out)["storeId"] == store
    settings = setup_env.identity_settings(store)
    assert [(c["idType"], c["normalization"]) for c in settings["identifierConfigs"]] == [
        ("email", "none"),  # the operator's normalization, not the bridge's
        ("loyalty_id", "trim"),
        ("phone", "phone"),
        ("whatsapp", "trim"),
        ("web_chat", "trim"),
    ]
    assert settings["matchingRules"][:2] == ["email", "loyalty_id"]


def test_a_failed_identity_update_stops_before_the_secret(setup_env):
    from memory_bridge_dev.sandbox import Fault

    setup_env.add_fault(Fault(status=400, match="/IdentityResolutionSettings", method="PUT"))
    name = f"never-written-{id(setup_env)}"
    code, _, err = run(setup_env, "--display-name", "bad-settings", "--secret-name", name)
    assert code == 1
    assert "update the identity resolution settings" in err and "HTTP 400" in err
    with pytest.raises(boto3.client("secretsmanager").exceptions.ResourceNotFoundException):
        boto3.client("secretsmanager").get_secret_value(SecretId=name)


# ---- the Conversations webhook ----------------------------------------------------------------------


def test_the_account_level_webhook_is_pointed_at_the_stack_and_a_second_run_changes_nothing(
    setup_env, conversations
):
    argv = ("--display-name", "hook-store", "--secret-name", f"hook-{id(setup_env)}", "--webhook-url", HOOK)
    code, out, err = run_full(setup_env, conversations, *argv)
    assert code == 0, err
    hook = conversations.account_webhook
    assert (hook.post_webhook_url, hook.method, hook.filters) == (HOOK, "POST", FILTERS)
    assert hook.pre_webhook_url is None
    assert json.loads(out)["webhook"]["changed"] is True
    assert f"set to {HOOK}, POST, onMessageAdded, onMessageUpdated, onMessageRemoved" in err
    [update] = conversations.requests_to("UpdateConfigurationWebhook")
    assert sorted(update.form) == [
        ("Filters", "onMessageAdded"),
        ("Filters", "onMessageRemoved"),
        ("Filters", "onMessageUpdated"),
        ("Method", "POST"),
        ("PostWebhookUrl", HOOK),
    ]

    code, out, err = run_full(setup_env, conversations, *argv)
    assert code == 0, err
    assert f"already {HOOK}, POST, onMessageAdded, onMessageUpdated, onMessageRemoved: unchanged" in err
    assert len(conversations.requests_to("UpdateConfigurationWebhook")) == 1
    assert json.loads(out)["webhook"]["changed"] is False


def test_a_service_webhook_is_configured_and_the_account_level_one_left_alone(setup_env, conversations):
    service = conversations.create_service()
    code, out, err = run_full(
        setup_env,
        conversations,
        "--display-name",
        "svc-store",
        "--secret-name",
        f"svc-{id(setup_env)}",
        "--webhook-url",
        HOOK,
        "--conversations-service",
        service,
    )
    assert code == 0, err
    configured = conversations.services[service]
    assert (configured.post_webhook_url, configured.method, configured.filters) == (
        HOOK,
        "POST",
        FILTERS,
    )
    assert conversations.account_webhook.post_webhook_url is None
    assert conversations.requests_to("UpdateConfigurationWebhook") == []
    assert json.loads(out)["webhook"]["service"] == service


def test_another_url_is_refused_before_anything_is_made_and_taken_with_force(setup_env, conversations):
    conversations.account_webhook.post_webhook_url = "https://other-app.example.com/hook"
    conversations.account_webhook.filters = ["onConversationAdded"]
    argv = ("--display-name", "force-store", "--secret-name", f"force-{id(setup_env)}", "--webhook-url", HOOK)
    code, _, err = run_full(setup_env, conversations, *argv)
    assert code == 2
    assert "https://other-app.example.com/hook" in err and "--force" in err and "Nothing was created" in err
    assert setup_env.requests_to("CreateStore") == [] and setup_env.requests_to("ListStores") == []
    assert conversations.requests_to("UpdateConfigurationWebhook") == []

    code, out, err = run_full(setup_env, conversations, *argv, "--force")
    assert code == 0, err
    hook = conversations.account_webhook
    assert (hook.post_webhook_url, hook.filters) == (HOOK, FILTERS)  # no pre-event hook to keep
    assert "replacing https://other-app.example.com/hook, --force" in err
    assert json.loads(out)["webhook"]["replaced"] == "https://other-app.example.com/hook"


def test_a_pre_event_webhooks_filters_are_kept_and_its_get_method_needs_force(setup_env, conversations):
    hook = conversations.account_webhook
    hook.pre_webhook_url, hook.filters, hook.method = (
        "https://moderation.example.com/pre",
        ["onMessageAdd"],
        "GET",
    )
    argv = ("--display-name", "pre-store", "--secret-name", f"pre-{id(setup_env)}", "--webhook-url", HOOK)
    code, _, err = run_full(setup_env, conversations, *argv)
    assert code == 2 and "called with GET" in err and "--force" in err
    hook.method = "POST"
    code, _, err = run_full(setup_env, conversations, *argv)
    assert code == 0, err
    assert hook.filters == ["onMessageAdd", *FILTERS]
    assert hook.pre_webhook_url == "https://moderation.example.com/pre"


def test_an_unknown_service_or_wrong_credentials_name_the_cause(setup_env, conversations, monkeypatch):
    argv = ("--display-name", "svc-x", "--secret-name", f"svc-x-{id(setup_env)}", "--webhook-url", HOOK)
    code, _, err = run_full(setup_env, conversations, *argv, "--conversations-service", "IS" + "0" * 32)
    assert code == 1 and "HTTP 404" in err and "--conversations-service" in err
    conversations.auth_token = "another-token"
    code, _, err = run_full(setup_env, conversations, *argv)
    assert code == 1 and "HTTP 401" in err and "credentials" in err
    assert DEV_AUTH_TOKEN not in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("--conversations-api-url", "http://conversations.example.com"), "--conversations-api-url"),
        (("--webhook-url", "http://abc.execute-api.us-east-1.amazonaws.com/Prod"), "--webhook-url"),
        (("--conversations-service", "IS123"), "--conversations-service"),
    ],
)
def test_bad_conversations_options_are_refused_before_anything_is_sent(setup_env, argv, named):
    out, err = io.StringIO(), io.StringIO()
    try:
        code = cli.main(
            ["setup", "--display-name", "x", "--memory-api-url", setup_env.base_url, "--skip-deploy", *argv],
            out=out,
            err=err,
        )
    except SystemExit as exit_:  # argparse's own refusal (a malformed service SID)
        code = exit_.code
    assert code == 2 and named in err.getvalue()
    assert setup_env.requests == []


def test_the_variable_names_the_conversations_api(setup_env, conversations, monkeypatch):
    monkeypatch.setenv("CONVERSATIONS_API_BASE_URL", conversations.base_url)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            "setup",
            "--display-name",
            "env-store",
            "--secret-name",
            f"env-{id(setup_env)}",
            "--webhook-url",
            HOOK,
            "--memory-api-url",
            setup_env.base_url,
            "--skip-deploy",
        ],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    assert conversations.account_webhook.post_webhook_url == HOOK
    monkeypatch.setenv("CONVERSATIONS_API_BASE_URL", "http://10.0.0.8:8080")
    code = cli.main(["setup", "--display-name", "env-store", "--skip-deploy"], out=out, err=err)
    assert code == 2 and "CONVERSATIONS_API_BASE_URL must be an absolute URL, https://" in err.getvalue()


def test_after_sam_deploy_the_webhook_gets_the_stacks_output(setup_env, conversations, monkeypatch, tmp_path):
    """`make deploy` end to end, sam stubbed: the stack's WebhookUrl output (a stack in moto's
    CloudFormation, as sam deploy leaves it) is what Conversations is pointed at."""
    sam = tmp_path / ".tools" / "sam" / "bin" / "sam"
    sam.parent.mkdir(parents=True)
    calls = tmp_path / "sam-calls"
    sam.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    sam.chmod(sam.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr("memory_bridge_cli.deploy.PROJECT_ROOT", tmp_path)
    deployed = "https://xyz789.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"
    stack = f"bridge-{id(setup_env)}"
    boto3.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"WebhookUrl": {"Value": deployed}},
            }
        ),
    )
    code, out, err = run_full(
        setup_env,
        conversations,
        "--display-name",
        "sam-store",
        "--secret-name",
        f"sam-{id(setup_env)}",
        "--stack-name",
        stack,
        deploy=True,
    )
    assert code == 0, err
    build, deploy = calls.read_text().splitlines()
    assert build == "build" and deploy.startswith(f"deploy --stack-name {stack} --parameter-overrides")
    assert conversations.account_webhook.post_webhook_url == deployed
    assert json.loads(out)["webhookUrl"] == deployed
    assert "[5/5] Conversations post-event webhook" in err
