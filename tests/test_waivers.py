"""Waivers as an admin uses them: waive a finding with a reason, see it leave the exit code and the
apply, see it come back when the waiver expires, and find it suppressed (not hidden) in SARIF."""

from __future__ import annotations

import json
import stat
from datetime import date, timedelta
from pathlib import Path

import jsonschema
import pytest
from azure.mgmt.storage import StorageManagementClient

from ztwizard import waivers as W
from ztwizard.cli import main
from ztwizard.errors import UsageError
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates.reference import BLOB_ACCOUNT, DIAG_ACCOUNT, FILES_ACCOUNT, WORKLOAD_SUB

DATA = Path(__file__).parent / "data"
TODAY = date.today()


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    Sandbox(tmp_path, estate="reference")
    return tmp_path


def run(capsys, state, *args):
    code = main(["--sandbox", "--state-dir", str(state), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def plan_json(capsys, state, *args):
    code, out, err = run(capsys, state, "plan", "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def findings(plan, check):
    return [f for s in plan["steps"] for f in s["findings"] if f["check"] == check]


def changes(plan, check):
    return [c for s in plan["steps"] for c in s["changes"] if c["check"] == check]


def test_waive_list_and_unwaive_keep_a_reviewable_file(capsys, state):
    code, out, err = run(capsys, state, "waive", "storage-1b", "--resource", BLOB_ACCOUNT,
                         "--reason", 'Legacy "orders" client needs TLS 1.0', "--expires",
                         (TODAY + timedelta(days=90)).isoformat(), "--by", "alice")
    assert code == 0, err
    wid = out.split(": ")[1].split(" ")[0]
    assert wid.startswith("w-")
    assert run(capsys, state, "waive", "vm-8a", "--subscription", WORKLOAD_SUB, "--reason", "Bought centrally")[0] == 0
    path = state / "waivers.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A reviewer's comment survives the tool's edits.
    path.write_text(path.read_text() + "# reviewed by the security board\n")

    code, out, _ = run(capsys, state, "waivers", "--format", "json")
    listed = json.loads(out)
    assert [w["check"] for w in listed] == ["storage-1b", "vm-8a"]
    assert listed[0] | {"expired": False} == listed[0] and listed[0]["by"] == "alice"
    assert listed[0]["reason"] == 'Legacy "orders" client needs TLS 1.0'
    code, text, _ = run(capsys, state, "waivers")
    assert wid in text and "alice" in text and "subscription " + WORKLOAD_SUB in text

    # The same waiver twice is refused, naming the one that exists.
    code, _, err = run(capsys, state, "waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "again")
    assert code == 2 and wid in err

    assert run(capsys, state, "unwaive", wid)[0] == 0
    remaining = W.load(path)
    assert [w.check for w in remaining] == ["vm-8a"]
    assert "# reviewed by the security board" in path.read_text()
    code, _, err = run(capsys, state, "unwaive", wid)
    assert code == 2 and "No waiver with id" in err and "Traceback" not in err


@pytest.mark.parametrize("args, needle", [
    (["waive", "storage-1z", "--resource", BLOB_ACCOUNT, "--reason", "r"], "Did you mean"),
    (["waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "   "], "needs a reason"),
    (["waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "r", "--expires", "2020-01-01"], "in the past"),
    (["waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "r", "--expires", "next year"], "not a date"),
    (["waive", "storage-1b", "--reason", "r"], "exactly one scope"),
    (["waive", "storage-1b", "--resource", "stcontosoappdata", "--reason", "r"], "not an ARM id"),
    (["waive", "storage-1b", "--subscription", "prod", "--reason", "r"], "not a GUID"),
])
def test_bad_waive_is_exit_2_and_writes_nothing(capsys, state, args, needle):
    code, _, err = run(capsys, state, *args)
    assert code == 2 and needle in err and "hint:" in err and "Traceback" not in err
    assert not (state / "waivers.toml").exists()


@pytest.mark.parametrize("text, needle", [
    ('[[waiver]]\nid = "w-1"\ncheck = "storage-1b"\nreason = "r"\nresource = "/subscriptions/x"\nexpires = \n',
     "line 6"),
    ('[[waiver]]\nid = "w-1"\ncheck = "storage-1b"\nreason = "r"\nresource_group = "rg"\n\n[[waiver]]\nid = "w-2"\n'
     'check = "storage-1b"\nreason = "r"\nresorce = "/subscriptions/x"\n', "waiver 2 (line 7): unknown key 'resorce'"),
    ('[[waiver]]\nid = "w-1"\ncheck = "nope-1a"\nreason = "r"\nsubscription = "' + WORKLOAD_SUB + '"\n',
     "unknown check id 'nope-1a'"),
    ('[[waiver]]\nid = "w-1"\ncheck = "vm-8a"\nreason = ""\nsubscription = "' + WORKLOAD_SUB + '"\n',
     "reason is missing or empty"),
])
def test_bad_waivers_file_names_file_and_line(capsys, state, tmp_path, text, needle):
    bad = tmp_path / "w.toml"
    bad.write_text(text)
    code, _, err = run(capsys, state, "--waivers", str(bad), "plan", "--check", "storage-1b")
    assert code == 2 and str(bad) in err and needle in err and "Traceback" not in err
    assert bad.read_text() == text  # never rewritten
    code, _, err = run(capsys, state, "--waivers", str(tmp_path / "missing.toml"), "plan")
    assert code == 2 and "does not exist" in err


def test_toml_strings_round_trip_whatever_the_reason_holds():
    nasty = 'quote " backslash \\ tab \t newline \n bell \x07 é ✓'
    w = W.Waiver(id="w-x", check="storage-1b", reason=nasty, resource=BLOB_ACCOUNT, expires=TODAY, by="o'neil")
    assert W.parse(W.dump([w])) == [w]


def test_waived_finding_keeps_its_status_and_leaves_exit_code_and_apply(capsys, state, arm_client):
    before = plan_json(capsys, state, "--check", "storage-1b")
    (failing,) = [f for f in findings(before, "storage-1b") if f["status"] == "fail"]
    assert failing["resource_id"].lower() == BLOB_ACCOUNT.lower() and changes(before, "storage-1b")
    assert run(capsys, state, "plan", "--check", "storage-1b", "--detailed-exitcode")[0] == 2

    assert run(capsys, state, "waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "legacy client",
               "--by", "alice")[0] == 0
    after = plan_json(capsys, state, "--check", "storage-1b")
    (waived,) = [f for f in findings(after, "storage-1b") if f.get("waiver")]
    assert waived["status"] == "fail"
    assert waived["waiver"] == {"id": W.waiver_id("storage-1b", BLOB_ACCOUNT), "reason": "legacy client",
                                "expires": None, "by": "alice"}
    assert all("waiver" not in f for f in findings(after, "storage-1b") if f is not waived)
    assert changes(after, "storage-1b") == []
    assert after["steps"][0]["status"] == "pass" and after["summary"]["fail"] == 0
    assert after["summary"]["waived"] == 1
    assert run(capsys, state, "plan", "--check", "storage-1b", "--detailed-exitcode")[0] == 0

    code, out, _ = run(capsys, state, "apply", "--check", "storage-1b", "--yes")
    assert code == 0 and "Nothing to apply" in out
    sb = Sandbox(state)
    account = arm_client(StorageManagementClient, sb, WORKLOAD_SUB).storage_accounts.get_properties(
        "rg-storage", "stcontosoappdata")
    assert account.minimum_tls_version == "TLS1_0"


def test_resource_group_waiver_spares_only_that_group(capsys, state, arm_client):
    """storage-1e fails on three accounts; waiving rg-storage leaves the rg-vms one to fix."""
    assert run(capsys, state, "waive", "storage-1e", "--resource-group", "rg-storage",
               "--reason", "copy scope decided per application")[0] == 0
    plan = plan_json(capsys, state, "--check", "storage-1e")
    waived = {f["resource_id"].lower() for f in findings(plan, "storage-1e") if f.get("waiver")}
    assert waived == {BLOB_ACCOUNT.lower(), FILES_ACCOUNT.lower()}
    assert [c["resource_id"].lower() for c in changes(plan, "storage-1e")] == [DIAG_ACCOUNT.lower()]
    assert run(capsys, state, "apply", "--check", "storage-1e", "--yes")[0] == 0
    client = arm_client(StorageManagementClient, Sandbox(state), WORKLOAD_SUB).storage_accounts
    assert client.get_properties("rg-vms", "stcontosovmdiag01").allowed_copy_scope == "AAD"
    assert client.get_properties("rg-storage", "stcontosoappdata").allowed_copy_scope is None
    assert client.get_properties("rg-storage", "stcontosofiles").allowed_copy_scope is None


def test_expired_waiver_stops_applying_and_the_plan_says_so(capsys, state):
    expired = W.Waiver(id="w-old", check="storage-1b", reason="until the migration", resource=BLOB_ACCOUNT,
                       expires=TODAY - timedelta(days=1))
    (state / "waivers.toml").write_text(W.dump([expired]))
    plan = plan_json(capsys, state, "--check", "storage-1b")
    assert all("waiver" not in f for f in findings(plan, "storage-1b"))
    assert changes(plan, "storage-1b")
    (note,) = plan["notes"]
    assert note["kind"] == "waiver_expired" and note["waiver"] == "w-old" and "expired on" in note["message"]
    code, text, _ = run(capsys, state, "plan", "--check", "storage-1b")
    assert "w-old" in text and "expired" in text
    code, out, _ = run(capsys, state, "waivers", "--format", "json")
    assert json.loads(out)[0]["expired"] is True
    # valid through its last day
    assert not W.Waiver(id="w", check="storage-1b", reason="r", resource=BLOB_ACCOUNT, expires=TODAY).expired(TODAY)


def test_sarif_reports_waived_results_as_suppressed(capsys, state, tmp_path):
    assert run(capsys, state, "waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "legacy client")[0] == 0
    out = tmp_path / "plan.sarif"
    assert run(capsys, state, "plan", "--step", "storage-1", "--format", "sarif", "--output", str(out))[0] == 0
    sarif = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads((DATA / "sarif-schema-2.1.0.json").read_text())).validate(sarif)
    results = sarif["runs"][0]["results"]
    suppressed = [r for r in results if r.get("suppressions")]
    assert len(suppressed) == 1 and suppressed[0]["ruleId"] == "storage-1b"
    assert suppressed[0]["suppressions"][0]["kind"] == "external"
    assert suppressed[0]["suppressions"][0]["justification"] == "legacy client"
    assert len(results) > 1 and all("suppressions" not in r for r in results if r is not suppressed[0])


def test_markdown_lists_waivers_in_their_own_section(capsys, state):
    assert run(capsys, state, "waive", "storage-1b", "--resource", BLOB_ACCOUNT, "--reason", "legacy client",
               "--expires", (TODAY + timedelta(days=30)).isoformat())[0] == 0
    code, md, _ = run(capsys, state, "plan", "--step", "storage-1", "--format", "markdown")
    assert code == 0
    section = md.split("## Waivers", 1)[1]
    assert "legacy client" in section and "storage-1b" in section and "stcontosoappdata" in section
    body = md.split("## Waivers", 1)[0]
    assert "| storage-1b | `stcontosoappdata" not in body  # not among the findings to act on


def test_dependent_change_of_a_waived_prerequisite_is_not_proposed(capsys, state):
    """JIT (vm-8c) needs Defender for Servers (vm-8a): waiving the plan in the workload
    subscription withholds the JIT policy there, with a note, instead of a change that would be skipped."""
    base = plan_json(capsys, state, "--step", "vm-8")
    jit = [c for c in changes(base, "vm-8c") if c["depends_on"]]
    assert jit, "the reference plan proposes JIT with its Defender prerequisite"
    assert run(capsys, state, "waive", "vm-8a", "--subscription", WORKLOAD_SUB, "--reason", "central plan")[0] == 0
    plan = plan_json(capsys, state, "--step", "vm-8")
    kept = {c["id"] for s in plan["steps"] for c in s["changes"]}
    assert not kept & {c["id"] for c in jit}
    assert any(n["kind"] == "waived_dependency" and n["change"] == jit[0]["id"] for n in plan["notes"])


def test_new_waiver_validates_without_a_file():
    with pytest.raises(UsageError):
        W.new_waiver("storage-1b", reason="r", resource=BLOB_ACCOUNT, subscription=WORKLOAD_SUB)
    w = W.new_waiver("storage-1b", reason=" r ", resource_group="rg-storage", subscription=WORKLOAD_SUB)
    assert w.reason == "r" and w.covers(BLOB_ACCOUNT) and not w.covers(DIAG_ACCOUNT)


def test_waiving_a_subnet_withholds_its_nsg_and_the_attach_but_not_the_other_subnet(capsys, state):
    from ztwizard.sandbox.estates.reference import SUBNET_DATA

    base = plan_json(capsys, state, "--check", "spoke-3a")
    assert len(changes(base, "spoke-3a")) == 4
    assert run(capsys, state, "waive", "spoke-3a", "--resource", SUBNET_DATA, "--reason", "data tier isolated by "
               "the firewall")[0] == 0
    plan = plan_json(capsys, state, "--check", "spoke-3a")
    left = [c["resource_id"].rsplit("/", 1)[-1] for c in changes(plan, "spoke-3a")]
    assert sorted(left) == ["AzureBastionSubnet", "nsg-AzureBastionSubnet-prod"]
    assert plan["steps"][0]["status"] == "fail"  # the Bastion subnet still fails
