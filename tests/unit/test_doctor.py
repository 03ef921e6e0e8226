"""`memory-bridge doctor`'s decisions over fake AWS answers: the alarms' destination (DescribeAlarms and
ListSubscriptionsByTopic as CloudWatch and SNS give them), the fixes it names, and its exit code."""

from __future__ import annotations

import io
from typing import Any

import pytest

from memory_bridge_cli import doctor
from memory_bridge_cli.common import Console
from memory_bridge_cli.doctor import Target, alarm_destination, check_alarms

TOPIC = "arn:aws:sns:us-east-1:123456789012:memory-bridge-alarms"


def alarm(name: str, actions: list[str] | None = None, enabled: bool = True) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmActions": [TOPIC] if actions is None else actions,
        "ActionsEnabled": enabled,
    }


def subscription(protocol: str = "email", confirmed: bool = True) -> dict[str, Any]:
    arn = f"{TOPIC}:0f1e2d3c" if confirmed else "PendingConfirmation"
    return {"SubscriptionArn": arn, "Protocol": protocol, "TopicArn": TOPIC, "Endpoint": "oncall@example.com"}


def test_alarms_that_notify_a_topic_someone_confirmed_pass():
    check = alarm_destination([alarm("a"), alarm("b")], TOPIC, [subscription("email"), subscription("https")])
    assert check.status == "pass"
    assert "2 alarm(s)" in check.detail and "2 confirmed subscription(s) (email, https)" in check.detail


@pytest.mark.parametrize(
    ("subscriptions", "said"),
    [([], "no confirmed subscription"), ([subscription(confirmed=False)], "1 pending confirmation")],
)
def test_a_topic_nobody_reads_fails_and_says_to_set_alarm_email(subscriptions, said):
    check = alarm_destination([alarm("a")], TOPIC, subscriptions)
    assert check.status == "fail" and said in check.detail
    assert "AlarmEmail" in check.fix and TOPIC in check.fix


def test_an_alarm_without_an_action_or_with_its_actions_disabled_fails():
    check = alarm_destination(
        [alarm("ok"), alarm("silent", actions=[]), alarm("muted", enabled=False)], TOPIC, [subscription()]
    )
    assert check.status == "fail"
    assert "2 of 3 alarm(s) notify nobody: muted, silent" in check.detail


def test_no_alarms_no_topic_or_unlistable_subscriptions_fail():
    assert alarm_destination([], TOPIC, [subscription()]).status == "fail"
    assert "no AlarmTopicArn" in alarm_destination([alarm("a")], None, None).detail
    unlisted = alarm_destination([alarm("a")], TOPIC, None)
    assert unlisted.status == "fail" and "sns:ListSubscriptionsByTopic" in unlisted.fix


class FakePaginator:
    def __init__(self, pages: list[dict[str, Any]]):
        self.pages = pages

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return self.pages


class FakeAws:
    """CloudFormation, CloudWatch and SNS answering as AWS does, for a stack with 150 alarms (two
    DescribeAlarms calls: it takes 100 names at most) and a topic with one confirmed subscriber."""

    def __init__(self, subscriptions: list[dict[str, Any]]):
        self.resources = [
            {"ResourceType": "AWS::CloudWatch::Alarm", "PhysicalResourceId": f"alarm-{i}"} for i in range(150)
        ] + [{"ResourceType": "AWS::SQS::Queue", "PhysicalResourceId": "https://sqs/queue"}]
        self.subscriptions = subscriptions
        self.described: list[list[str]] = []

    def client(self, _aws: dict[str, Any], service: str) -> Any:
        return self if service in ("cloudformation", "cloudwatch", "sns") else None

    def get_paginator(self, name: str) -> FakePaginator:
        if name == "list_stack_resources":
            return FakePaginator(
                [
                    {"StackResourceSummaries": self.resources[:80]},
                    {"StackResourceSummaries": self.resources[80:]},
                ]
            )
        return FakePaginator([{"Subscriptions": self.subscriptions}])

    def describe_alarms(self, AlarmNames: list[str], **_: Any) -> dict[str, Any]:
        self.described.append(AlarmNames)
        return {"MetricAlarms": [alarm(n) for n in AlarmNames], "CompositeAlarms": []}


def target(local: bool = False) -> Target:
    return Target(
        local=local,
        name="bridge-prod",
        webhook_url="https://x.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations",
        secret="memory-bridge/twilio",
        store_id="mem_store_01kpttrksqe08rhv122gzq52ax",
        chat_id_type="chat_identity",
        memory_url="https://memory.twilio.com",
        conversations_url="https://conversations.twilio.com",
        queue_url=None,
        table=None,
        alarm_topic=TOPIC,
        aws={"region": "eu-west-1"},
    )


def test_the_stacks_alarms_are_read_in_batches_of_100_and_the_topic_listed(monkeypatch):
    fake = FakeAws([subscription("email")])
    monkeypatch.setattr(doctor, "aws_client", fake.client)
    check = check_alarms(target())
    assert check.status == "pass" and "150 alarm(s)" in check.detail
    assert [len(names) for names in fake.described] == [100, 50]

    fake = FakeAws([subscription(confirmed=False)])
    monkeypatch.setattr(doctor, "aws_client", fake.client)
    assert check_alarms(target()).status == "fail"


def test_the_local_stack_skips_the_alarms_with_a_line_that_says_so(monkeypatch):
    monkeypatch.setattr(doctor, "aws_client", lambda *_: pytest.fail("no AWS call for the local stack"))
    check = check_alarms(target(local=True))
    assert check.status == "skip" and "local stack has no alarms" in check.detail


def test_the_setup_command_names_the_stack_and_its_choices():
    chosen = target()
    chosen.chat_id_type, chosen.service = "web_user", "IS" + "a" * 32
    command = chosen.setup_command("support-store")
    assert command == (
        "memory-bridge setup --skip-deploy --stack-name bridge-prod --display-name support-store "
        f"--secret-name memory-bridge/twilio --parameter ChatIdType=web_user --conversations-service IS{'a' * 32} "
        "--region eu-west-1"
    )


def test_one_failure_exits_1_and_its_fix_is_printed(monkeypatch):
    checks = [
        doctor.passed("secret", "reads"),
        doctor.failed("store", "is FAILED", "use another"),
        doctor.skipped("alarm destination", "local"),
    ]
    monkeypatch.setattr(doctor, "find_target", lambda _args: target())
    monkeypatch.setattr(doctor, "run_checks", lambda _target: checks)
    out = io.StringIO()
    assert doctor.command_doctor(None, Console(out, io.StringIO())) == 1  # type: ignore[arg-type]
    text = out.getvalue().splitlines()
    assert text[1].startswith("✓ secret") and text[2].startswith("✗ store") and "fix: use another" in text[3]
    assert text[4].startswith("\u2013 alarm destination") and text[-1] == "1 passed, 1 failed, 1 skipped"
    monkeypatch.setattr(doctor, "run_checks", lambda _target: checks[:1] + checks[2:])
    assert doctor.command_doctor(None, Console(io.StringIO(), io.StringIO())) == 0  # type: ignore[arg-type]


class FakeCloudFormation:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters

    def client(self, _aws: dict[str, Any], service: str) -> Any:
        assert service == "cloudformation"
        return self

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {
            "Stacks": [
                {
                    "Outputs": [{"OutputKey": "WebhookUrl", "OutputValue": target().webhook_url}],
                    "Parameters": [
                        {"ParameterKey": key, "ParameterValue": value}
                        for key, value in self.parameters.items()
                    ],
                }
            ]
        }


STACK_PARAMETERS = {"MemoryStoreId": "mem_store_01kpttrksqe08rhv122gzq52ax", "TwilioCredentialsSecret": "s"}


def stack_args(**overrides: Any) -> Any:
    import argparse

    values = {
        "stack_name": "bridge-prod",
        "region": "eu-west-1",
        "aws_profile": None,
        "endpoint_url": None,
        "memory_api_url": None,
        "conversations_api_url": None,
        "conversations_service": None,
    }
    return argparse.Namespace(**{**values, **overrides})


def test_a_deployed_stack_is_checked_against_its_own_conversations_url(monkeypatch):
    """The functions read participants at the stack's ConversationsApiBaseUrl: doctor checks that one
    (a flag still wins; a variable left in this shell does not)."""
    own = "https://conversations.example.com"
    fake = FakeCloudFormation({**STACK_PARAMETERS, "ConversationsApiBaseUrl": own})
    monkeypatch.setattr(doctor, "aws_client", fake.client)
    monkeypatch.setenv("CONVERSATIONS_API_BASE_URL", "https://elsewhere.example.com")
    assert doctor.stack_target(stack_args()).conversations_url == own
    flag = "https://flag.example.com"
    assert doctor.stack_target(stack_args(conversations_api_url=flag)).conversations_url == flag
    # A stack deployed before the parameter existed: as before, the variable, else Twilio's.
    monkeypatch.setattr(doctor, "aws_client", FakeCloudFormation(STACK_PARAMETERS).client)
    assert doctor.stack_target(stack_args()).conversations_url == "https://elsewhere.example.com"
    monkeypatch.delenv("CONVERSATIONS_API_BASE_URL")
    assert doctor.stack_target(stack_args()).conversations_url == "https://conversations.twilio.com"


def test_a_stacks_conversations_url_is_held_to_the_credentials_rule(monkeypatch):
    fake = FakeCloudFormation(
        {**STACK_PARAMETERS, "ConversationsApiBaseUrl": "http://conversations.example.com"}
    )
    monkeypatch.setattr(doctor, "aws_client", fake.client)
    with pytest.raises(doctor.UsageError, match="ConversationsApiBaseUrl"):
        doctor.stack_target(stack_args())
