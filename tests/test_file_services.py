"""storage-1f judges every account that has a file service, shares or not: the sandbox answers
as ARM does for a kind without the service, the inventory reads fileServices for the kinds that
have it, and the fix goes through the real azure-mgmt clients (apply -> pass -> undo)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.storage import StorageManagementClient

from ztwizard import gateway
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect
from ztwizard.gateway import Gateway
from ztwizard.journal import Journal
from ztwizard.target import in_process_target
from ztwizard.undo import undo_changes

SUB = "00000000-0000-0000-0000-0000000000a1"  # the small estate's subscription (conftest)


def create(st: Any, name: str, kind: str) -> None:
    sku = "Premium_LRS" if kind in ("FileStorage", "BlockBlobStorage") else "Standard_LRS"
    st.storage_accounts.begin_create("rg-st", name, {"location": "westeurope", "kind": kind, "sku": {"name": sku},
                                                     "properties": {"minimumTlsVersion": "TLS1_2"}}).result()


@pytest.fixture
def estate(sandbox: Any, arm_client: Any) -> tuple[Any, Any]:
    sb = sandbox(lro_seconds=0)
    st = arm_client(StorageManagementClient, sb, SUB)
    create(st, "stfiles01", "FileStorage")
    create(st, "stblobonly01", "BlobStorage")
    create(st, "stblockblob01", "BlockBlobStorage")
    return sb, st


@pytest.mark.parametrize("name", ["stblobonly01", "stblockblob01"])
def test_a_blob_only_account_has_no_file_service(estate, name):
    _sb, st = estate
    for call in (lambda: st.file_services.list("rg-st", name),
                 lambda: st.file_services.get_service_properties("rg-st", name),
                 lambda: list(st.file_shares.list("rg-st", name))):
        with pytest.raises(HttpResponseError) as err:
            call()
        assert err.value.status_code == 400 and err.value.error.code == "FeatureNotSupportedForAccount"
        assert "File is not supported for the account" in err.value.message
    assert st.blob_services.list("rg-st", name) is not None  # blobs are what it has


@pytest.mark.parametrize(("name", "status", "code"), [
    ("stblobonly01", 400, "FeatureNotSupportedForAccount"), ("stnosuch01", 404, "ResourceNotFound")])
def test_the_inventorys_raw_share_list_fails_as_the_typed_list_does(estate, name, status, code):
    """The inventory lists shares as ARM's JSON, not through the typed list: ARM's refusal still
    reaches it as the typed list's error (class, status and code), which is what it reports."""
    sb, st = estate
    acct = {"id": f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/{name}"}
    with pytest.raises(HttpResponseError) as typed:
        list(st.file_shares.list("rg-st", name))
    with pytest.raises(HttpResponseError) as raw:
        gateway._file_shares(Gateway(in_process_target(sb)), acct)
    assert type(raw.value) is type(typed.value)
    assert (raw.value.status_code, raw.value.error.code) == (typed.value.status_code, typed.value.error.code)
    assert (raw.value.status_code, raw.value.error.code) == (status, code)


def test_the_inventorys_raw_share_list_is_the_typed_list_as_json(estate):
    sb, st = estate
    st.file_shares.create("rg-st", "stfiles01", "share1", {"properties": {"shareQuota": 100}})
    acct = {"id": f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stfiles01"}
    raw = gateway._file_shares(Gateway(in_process_target(sb)), acct)
    assert raw == [x.as_dict() for x in st.file_shares.list("rg-st", "stfiles01")]
    assert [x["name"] for x in raw] == ["share1"]


def test_a_file_storage_account_has_no_blob_service(estate):
    _sb, st = estate
    with pytest.raises(HttpResponseError) as err:
        st.blob_services.get_service_properties("rg-st", "stfiles01")
    assert err.value.status_code == 400 and "Blob is not supported" in err.value.message
    assert st.file_services.list("rg-st", "stfiles01").value[0].name == "default"


def test_every_account_with_a_file_service_is_judged_shares_or_not_and_the_fix_round_trips(estate, tmp_path):
    sb, _st = estate
    gw = Gateway(in_process_target(sb))
    plan = inspect(gw, check_ids=["storage-1f"])
    findings = {f.resource_id.rsplit("/", 1)[-1]: f for f in plan.steps[0].findings}
    # stblob01 (StorageV2, no shares) and the FileStorage account; the blob-only kinds have nothing to judge
    assert sorted(findings) == ["stblob01", "stfiles01"]
    assert {(f.status, f.remediation) for f in findings.values()} == {("fail", "auto")}
    assert plan.steps[0].status == "fail"  # a blob-only account's 400 is no read error
    changes = plan.changes()
    assert sorted(c.resource_id.split("/")[-3] for c in changes) == ["stblob01", "stfiles01"]
    journal = Journal(tmp_path / "state")
    try:
        session = start_session(journal, gw, changes)
        report = apply_changes(gw, journal, session, changes)
        assert not report.failed and len(report.applied) == 2
        after = inspect(gw, check_ids=["storage-1f"])
        assert {f.status for f in after.steps[0].findings} == {"pass"}
        undone = undo_changes(gw, journal, session)
        assert not undone.failed
    finally:
        journal.close()
    again = inspect(gw, check_ids=["storage-1f"])
    assert {f.status for f in again.steps[0].findings} == {"fail"}
