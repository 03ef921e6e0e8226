"""`memory-bridge stores …` and `operations show` against the sandbox over loopback."""

import io
import json

import pytest

from memory_bridge_cli import main as cli
from memory_bridge_dev.sandbox import Fault, MemorySandbox
from tests.contract import request_problems, response_problems, spec
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def memory(monkeypatch, tmp_path):
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=0.6)
    sandbox.serve()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "no-stack.json"))
    monkeypatch.delenv("MEMORY_API_BASE_URL", raising=False)
    yield sandbox
    sandbox.close()


def run(memory, *argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([*argv, "--memory-api-url", memory.base_url], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_create_waits_for_the_operation_and_prints_the_store_id(memory):
    code, out, err = run(
        memory, "stores", "create", "--display-name", "support-bot", "--description", "Support"
    )
    assert code == 0, err
    store_id = out.splitlines()[0]
    assert memory.stores[store_id].displayName == "support-bot"
    assert "COMPLETED" in err  # progress lines on stderr
    assert len(memory.requests_to("FetchOperation")) >= 1


def test_create_json_and_no_wait(memory):
    code, out, _ = run(memory, "stores", "create", "--display-name", "nowait", "--no-wait", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["timedOut"] is False
    assert document["operationId"].startswith("proc_job_")
    assert memory.requests_to("FetchOperation") == []


def test_failed_operation_prints_twilio_error_and_exits_1(memory):
    memory.fail_next_store = {
        "type": "PROVISIONING",
        "title": "Provisioning failed",
        "code": 520050,
        "detail": "intelligence service unavailable",
    }
    code, out, _ = run(memory, "stores", "create", "--display-name", "doomed")
    assert code == 1
    assert "Provisioning failed" in out and "520050" in out and "intelligence service unavailable" in out


def test_timeout_prints_the_operation_and_how_to_resume(memory):
    memory.provisioning_seconds = 4.0
    code, out, _ = run(memory, "stores", "create", "--display-name", "slow-one", "--timeout", "1.5")
    assert code == 1
    operation_id = next(word for word in out.split() if word.startswith("proc_job_")).rstrip(".")
    assert f"memory-bridge operations show {operation_id}" in out
    code, out, _ = run(memory, "operations", "show", operation_id, "--json")
    assert code == 0
    assert json.loads(out)["status"] in ("PENDING", "RUNNING", "COMPLETED")
    memory.operations[operation_id].created -= 10  # time passes
    code, out, _ = run(memory, "operations", "show", operation_id)
    assert code == 0
    assert "COMPLETED" in out and "mem_store_" in out


def test_existing_name_is_reused_and_nothing_created(memory):
    existing = memory.seed_store("already-here")
    code, out, _ = run(memory, "stores", "create", "--display-name", "already-here")
    assert code == 0
    assert out.splitlines()[0] == existing
    assert "already exists" in out
    assert memory.requests_to("CreateStore") == []


def test_store_limit_says_so_and_lists_the_stores(memory):
    memory.store_limit = 2
    first, second = memory.seed_store("one"), memory.seed_store("two")
    code, out, _ = run(memory, "stores", "create", "--display-name", "three")
    assert code == 1
    assert "store limit" in out and "520044" in out
    assert first in out and second in out


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["--display-name", "has space"], "must match ^[a-zA-Z0-9-]+$"),
        (["--display-name", "under_score"], "must match ^[a-zA-Z0-9-]+$"),
        (["--display-name", "x" * 65], "at most 64 characters"),
        (["--display-name", ""], "--display-name is required"),
        (["--display-name", "ok", "--description", ""], "--description must be 1 to 128 characters"),
        (["--display-name", "ok", "--description", "d" * 129], "--description must be 1 to 128 characters"),
        (["--display-name", "ok", "--timeout", "0"], "must be greater than 0"),
        (["--display-name", "ok", "--timeout", "soon"], "must be a number of seconds"),
    ],
)
def test_bad_inputs_name_the_rule_exit_2_and_send_nothing(memory, argv, rule, capsys):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:  # argparse-level errors exit directly…
        code = cli.main(["stores", "create", *argv, "--memory-api-url", memory.base_url], out=out, err=err)
        raise SystemExit(code)
    assert exited.value.code == 2
    assert rule in err.getvalue() + capsys.readouterr().err
    assert memory.requests == []


def test_429_and_503_while_polling_are_retried(memory):
    memory.add_fault(Fault(status=429, retry_after=1, times=1, match="/Operations/"))
    memory.add_fault(Fault(status=503, times=1, match="/Operations/"))
    code, out, err = run(memory, "stores", "create", "--display-name", "bumpy")
    assert code == 0, err
    assert "retrying" in err
    assert out.startswith("mem_store_")


def test_list_and_show(memory):
    store = memory.seed_store("listed")
    code, out, _ = run(memory, "stores", "list", "--json")
    assert code == 0
    assert [s["id"] for s in json.loads(out)["stores"]] == [store]
    code, out, _ = run(memory, "stores", "show", store)
    assert code == 0 and "listed" in out and "ACTIVE" in out
    code, _, err = run(memory, "stores", "show", "nope")
    assert code == 2 and "STORE_ID must match" in err


def test_missing_credentials_is_a_usage_error(memory, monkeypatch):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    code, _, err = run(memory, "stores", "list")
    assert code == 2
    assert "TWILIO_ACCOUNT_SID" in err


def test_wrong_credentials_say_what_to_check(memory, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong")
    code, _, err = run(memory, "stores", "list")
    assert code == 1
    assert "401" in err and "Traceback" not in err


def test_every_request_sent_is_valid_against_the_contract(memory):
    spec()
    memory.seed_store("pre-existing")
    run(memory, "stores", "create", "--display-name", "contract-check", "--description", "checked")
    run(memory, "stores", "list")
    problems = []
    for record in memory.requests:
        problems += request_problems(record.operation, record.body)
        problems += response_problems(
            record.operation, record.status, record.response_body, record.response_headers
        )
    assert problems == []
    assert {r.operation for r in memory.requests} >= {
        "ListStores",
        "FetchStore",
        "CreateStore",
        "FetchOperation",
    }
