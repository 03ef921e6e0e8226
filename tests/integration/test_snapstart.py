"""SnapStart (template parameter WebhookSnapStart): after a restore, the webhook drops the sockets the
snapshot held and reads the secret again, and goes on answering; the hook is registered only where
Lambda's runtime offers it."""

from __future__ import annotations

import http.client
import sys
import types

from memory_bridge import runtime
from tests.integration.conftest import outcome
from tests.support import message_params


def test_after_restore_closes_the_snapshots_connections_and_reads_the_secret_again(bridge):
    assert outcome(bridge.send(message_params(message_sid="IMsnap1", body="before"))) == "posted"
    service = runtime.webhook_service()
    memory_pool = service.memory._host_pool  # type: ignore[attr-defined]
    ledger_pool = service.ledger.client.json._pool  # type: ignore[attr-defined]
    # moto closes every connection; AWS keeps them alive, as the snapshot would hold one:
    ledger_pool.put(http.client.HTTPConnection(ledger_pool.host, ledger_pool.port))
    assert memory_pool.num_connections >= 1 and len(ledger_pool) == 1
    reads = service.credentials.fetch_count

    runtime.after_restore()

    assert memory_pool.pool is None and not len(ledger_pool)  # the snapshot's pool closed
    assert service.memory._host_pool is not memory_pool  # type: ignore[attr-defined]  # and a fresh one
    assert service.credentials.fetch_count == reads + 1
    assert outcome(bridge.send(message_params(message_sid="IMsnap2", body="after"))) == "posted"
    assert sorted(o["content"] for o in bridge.observations()) == ["after", "before"]


def test_a_failed_secret_read_after_restore_keeps_the_snapshots_secret(bridge, monkeypatch):
    service = runtime.webhook_service()

    def unreachable(**_: object) -> None:
        raise TimeoutError

    monkeypatch.setattr(service.credentials, "refresh", unreachable)
    runtime.after_restore()
    assert outcome(bridge.send(message_params(message_sid="IMsnap3", body="still signed"))) == "posted"


def test_the_hook_is_registered_where_the_runtime_offers_it(monkeypatch):
    registered = []
    module = types.ModuleType("snapshot_restore_py")
    module.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    assert runtime.register_snapstart_hooks() is True
    assert registered == [runtime.after_restore]


def test_without_the_runtimes_module_nothing_is_registered(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails
    assert runtime.register_snapstart_hooks() is False


def test_after_restore_before_any_service_is_harmless():
    runtime.reset()  # as after an init that answered a configuration error: nothing was built
    runtime.after_restore()
    assert runtime.built_service() is None
