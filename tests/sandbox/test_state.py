"""State on disk: survives restarts, written atomically with mode 0600, exported and reset."""

from __future__ import annotations

import json
import os
import stat

import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.storage import StorageManagementClient

from ztwizard import files
from ztwizard.errors import UsageError
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates import load_estate
from ztwizard.sandbox.server import export, reset

SUB = "00000000-0000-0000-0000-0000000000a1"
NSG = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/nsg-app"


def test_acknowledged_writes_survive_a_new_instance(tmp_path, sandbox, arm_client):
    sb = sandbox(tmp_path)
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"owner": "ops"}})
    etag = net.network_security_groups.get("rg-net", "nsg-app").etag
    again = Sandbox(tmp_path, estate=None)  # estate ignored: the state dir has state
    assert (again.token, again.reader_token) == (sb.token, sb.reader_token)
    net2 = arm_client(NetworkManagementClient, again, SUB)
    nsg = net2.network_security_groups.get("rg-net", "nsg-app")
    assert nsg.tags == {"owner": "ops"} and nsg.etag == etag
    assert [r.name for r in nsg.security_rules] == ["allow-ssh"]


def test_state_file_is_private_and_whole(tmp_path, sandbox, arm_client):
    sb = sandbox(tmp_path)
    path = tmp_path / "sandbox" / "state.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    arm_client(StorageManagementClient, sb, SUB).storage_accounts.update(
        "rg-st", "stblob01", {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == "ztwizard.sandbox/v1"
    assert not [p for p in os.listdir(path.parent) if p.startswith(".state.json.")]  # no temp left


def test_operation_in_flight_survives_a_restart(tmp_path, sandbox, arm_client):
    sb = sandbox(tmp_path, lro_polls=2, lro_seconds=60)
    status, headers, _ = sb.handle("PUT", f"https://management.azure.com{NSG}?api-version=2026-03-01",
                                   {"Authorization": f"Bearer {sb.token}"}, b'{"location":"westeurope"}')
    assert status == 200
    again = Sandbox(tmp_path, estate=None, lro_seconds=60)
    auth = {"Authorization": f"Bearer {again.token}"}
    states = [json.loads(again.handle("GET", headers["Azure-AsyncOperation"], auth, b"")[2])["status"]
              for _ in range(3)]
    assert states == ["InProgress", "InProgress", "Succeeded"]


def test_unreadable_state_is_one_clear_error_and_reset_repairs_it(tmp_path, sandbox, small_estate):
    sandbox(tmp_path)
    (tmp_path / "sandbox" / "state.json").write_text("{broken")
    with pytest.raises(UsageError) as err:
        Sandbox(tmp_path, estate=None)
    assert "unreadable" in err.value.message and "reset" in err.value.hint
    out = reset(tmp_path, small_estate)
    assert out["resources"] == len(Sandbox(tmp_path, estate=None).store)


def test_export_round_trips_through_load(tmp_path, sandbox, arm_client, capsys):
    sb = sandbox(tmp_path)
    net = arm_client(NetworkManagementClient, sb, SUB)
    net.subnets.begin_create_or_update("rg-net", "vnet-spoke", "extra",
                                       {"properties": {"addressPrefix": "10.1.9.0/24"}}).result()
    out = tmp_path / "estate.json"
    n = export(tmp_path, out)
    exported = json.loads(out.read_text())
    assert n == len(exported) == len(sb.store)
    vnet = next(e for e in exported if e["id"].endswith("/virtualNetworks/vnet-spoke"))
    assert "subnets" not in vnet["properties"]  # children are entries of their own
    loaded = Sandbox(None, estate=str(out))  # through ztwizard.sandbox.estates.load_estate
    assert loaded.export() == exported
    assert len(load_estate(str(out))) == len(exported)
    export(tmp_path, None)
    assert json.loads(capsys.readouterr().out) == exported


def test_export_and_reset_refuse_bad_input_without_writing(tmp_path, sandbox):
    with pytest.raises(UsageError) as err:
        export(tmp_path / "nothing-here", None)
    assert "no sandbox state" in err.value.message
    sb = sandbox(tmp_path)
    before = (tmp_path / "sandbox" / "state.json").read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "no id"}]')
    with pytest.raises(UsageError):
        reset(tmp_path, str(bad))
    assert (tmp_path / "sandbox" / "state.json").read_bytes() == before
    assert len(Sandbox(tmp_path, estate=None).store) == len(sb.store)


def test_reset_keeps_tokens_and_replaces_the_estate(tmp_path, sandbox):
    sb = sandbox(tmp_path)
    reset(tmp_path, [{"id": f"/subscriptions/{SUB}/resourceGroups/only", "location": "westeurope"}])
    again = Sandbox(tmp_path, estate=None)
    assert again.token == sb.token
    assert [e["name"] for e in again.export()] == ["only"]


def test_bad_fault_spec_is_a_usage_error(sandbox):
    for spec in ("oops:0.1", "500:2", "500:x", "429:0.7,500:0.6"):
        with pytest.raises(UsageError):
            sandbox(faults=spec)


def test_large_states_log_writes_and_compact(tmp_path, sandbox, arm_client):
    sb = sandbox(tmp_path, snapshot_threshold=0, compact_every=3)
    net = arm_client(NetworkManagementClient, sb, SUB)
    log = tmp_path / "sandbox" / "state.log"
    net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"n": "1"}})
    assert log.exists() and stat.S_IMODE(os.stat(log).st_mode) == 0o600
    net.route_tables.begin_delete("rg-net", "rt-app").result()
    again = Sandbox(tmp_path, estate=None)
    assert again.store.get(NSG)["tags"] == {"n": "1"}
    assert again.store.get(NSG.replace("networkSecurityGroups/nsg-app", "routeTables/rt-app")) is None
    for i in range(2, 6):
        net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"n": str(i)}})
    assert not log.exists() or len(log.read_bytes().splitlines()) < 4  # folded into state.json
    with open(log, "ab") as fh:  # a write that died mid-line was never acknowledged
        fh.write(b'{"seq": 99999, "put": [')
    assert Sandbox(tmp_path, estate=None).store.get(NSG)["tags"] == {"n": "5"}


def test_a_write_that_cannot_be_saved_is_not_applied(tmp_path, sandbox, arm_client, monkeypatch):
    import errno

    from azure.core.exceptions import HttpResponseError

    sb = sandbox(tmp_path)
    net = arm_client(NetworkManagementClient, sb, SUB, retry_total=0)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(files.os, "replace", disk_full)
        with pytest.raises(HttpResponseError) as err:
            net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"lost": "yes"}})
    assert err.value.status_code == 500 and "not applied" in err.value.error.message
    assert net.network_security_groups.get("rg-net", "nsg-app").tags in (None, {})
    assert not [p for p in os.listdir(tmp_path / "sandbox") if p.startswith(".state.json.")]


def test_an_internal_failure_mid_write_changes_nothing(tmp_path, sandbox, arm_client, monkeypatch):
    from azure.core.exceptions import HttpResponseError

    from ztwizard.sandbox.arm import Sandbox as Core

    sb = sandbox(tmp_path)
    net = arm_client(NetworkManagementClient, sb, SUB, retry_total=0)
    before = net.network_interfaces.get("rg-vm", "nic-web").as_dict()

    def broken(self, *args):
        raise KeyError("simulated bug after the NIC was stored")

    monkeypatch.setattr(Core, "_relink", broken)
    body = dict(before, tags={"half": "applied"})
    with pytest.raises(HttpResponseError) as err:
        net.network_interfaces.begin_create_or_update("rg-vm", "nic-web", body).result()
    assert err.value.status_code == 500 and "nothing was changed" in err.value.error.message
    monkeypatch.undo()
    after = net.network_interfaces.get("rg-vm", "nic-web").as_dict()
    assert after == before
