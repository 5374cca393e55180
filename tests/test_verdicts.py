"""Status says compliance, remediation says who fixes it (product.md §4): the rules each
evaluator follows, the label check Check.run enforces, and how every report carries both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ztwizard.cli import main
from ztwizard.estate import load_estate_file
from ztwizard.inventory import Inventory
from ztwizard.model import REMEDIATION_KINDS
from ztwizard.sandbox.estates import reference, scale
from ztwizard.steps import CHECK_BY_ID
from ztwizard.steps._base import CatalogError, Check, Context

ESTATES = Path(__file__).resolve().parent / "data" / "estates"
ACCT = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/st1"


def estates() -> list[tuple[str, Inventory]]:
    out = [("reference", Inventory.from_resources(reference.build())),
           ("scale", Inventory.from_resources(scale.build(60)))]
    return out + [(p.name, Inventory.from_resources(load_estate_file(p))) for p in sorted(ESTATES.glob("*.json"))]


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def account() -> dict[str, Any]:
    return {"id": ACCT, "name": "st1", "type": "Microsoft.Storage/storageAccounts", "properties": {}}


def check_of(label: str, evaluate: Any) -> Check:
    return Check(id="x-1a", title="t", remediation=label, evaluate=evaluate, takes_context=True)


def run(label: str, evaluate: Any) -> Any:
    return check_of(label, evaluate).run(Inventory.from_resources([account()]))


# ---- the label check ---------------------------------------------------------------------------

def test_a_failure_the_label_says_the_wizard_fixes_must_come_with_a_change():
    def evaluate(ctx: Context) -> None:
        ctx.finding(ACCT, "fail", "properties.x", 1, 2, "x is 1.")  # no change: a lie about who fixes

    with pytest.raises(CatalogError, match="x-1a reports .*st1 as fixed by 'auto' but proposes no change"):
        run("auto-patch", evaluate)


def test_a_change_needs_a_failure_it_fixes():
    def evaluate(ctx: Context) -> None:
        ctx.fail_by_hand(ACCT, "properties.x", 1, 2, "Set x to 2 in the portal.")
        ctx.patch(account(), {"properties.x": 2})

    with pytest.raises(CatalogError, match="proposes 1 change\\(s\\) but reports no failure they fix"):
        run("auto-patch", evaluate)


def test_manual_means_not_judged_so_it_has_no_fix():
    def evaluate(ctx: Context) -> None:
        ctx.finding(ACCT, "manual", message="Look.", remediation="auto")

    with pytest.raises(CatalogError, match="reports .*st1 as manual with remediation 'auto'"):
        run("auto-patch", evaluate)


def test_a_remediation_other_than_the_label_is_refused():
    def evaluate(ctx: Context) -> None:
        ctx.finding(ACCT, "fail", message="Missing.", remediation="create")
        ctx.patch(account(), {"properties.x": 2})

    with pytest.raises(CatalogError, match="labelled 'auto-patch' but reports remediation 'create'"):
        run("auto-patch", evaluate)


def test_what_a_person_must_fix_says_how():
    def evaluate(ctx: Context) -> None:
        ctx.fail_by_hand(ACCT, "properties.x", 1, 2, "")

    with pytest.raises(CatalogError, match="leaves .*st1 to a person without an instruction"):
        run("advisory", evaluate)


def test_remediation_follows_the_label_unless_the_check_says_a_person_fixes_it():
    def evaluate(ctx: Context) -> None:
        ctx.finding(ACCT, "pass", message="ok")
        ctx.finding(ACCT, "fail", message="x is 1.")
        ctx.fail_by_hand(ACCT + "2", message="Recreate it.")
        ctx.finding(ACCT, "manual", message="Look in Entra ID.")
        ctx.patch(account(), {"properties.x": 2})

    got = [(f.status, f.remediation) for f in run("auto-patch", evaluate).findings]
    assert got == [("pass", "auto"), ("fail", "auto"), ("fail", "manual"), ("manual", "manual")]

    def advisory(ctx: Context) -> None:
        ctx.finding(ACCT, "fail", message="Do this by hand.")

    assert [f.remediation for f in run("advisory", advisory).findings] == ["manual"]


def test_every_check_over_every_estate_agrees_with_its_label():
    """Check.run raises on a mismatch; on top, an advisory check never claims a fix, and every
    finding a person is left with (fail by hand, manual) carries its instruction."""
    kinds: dict[str, set[str]] = {}
    for name, inv in estates():
        for check in CHECK_BY_ID.values():
            result = check.run(inv)
            for f in result.findings:
                assert f.remediation in REMEDIATION_KINDS, (name, check.id)
                assert f.remediation in check.fixed_by(), (name, check.id)
                if f.status == "fail":
                    kinds.setdefault(check.id, set()).add(f.remediation)
                if f.remediation == "manual" and f.status in ("fail", "manual"):
                    assert f.message.strip(), (name, check.id, f.resource_id)
    advisory_fixing = [c for c, k in kinds.items() if CHECK_BY_ID[c].remediation == "advisory" and k - {"manual"}]
    assert not advisory_fixing


# ---- the status rules on the reference estate ------------------------------------------------------

@pytest.fixture(scope="module")
def reference_plan(tmp_path_factory: Any) -> dict[str, Any]:
    state = str(tmp_path_factory.mktemp("state"))
    code = main(["--state-dir", state, "--sandbox", "plan", "--format", "json", "--output", f"{state}/p.json"])
    assert code == 0
    with open(f"{state}/p.json") as fh:
        plan: dict[str, Any] = json.load(fh)
    return plan


def findings_of(plan: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for s in plan["steps"] for f in s["findings"] if f["check"] == check]


@pytest.mark.parametrize("check, why", [
    ("storage-1h", "no infrastructure encryption"),
    ("hub-2c", "public IPs inheriting from an unprotected VNet"),
    ("vm-2a", "standing Contributor for a user"),
    ("spoke-3b", "an NSG shared by two subnets"),
    ("vm-4b", "disks on platform keys with no set to move to"),
])
def test_known_non_compliance_fails_even_when_a_person_fixes_it(reference_plan, check, why):
    got = findings_of(reference_plan, check)
    bad = [f for f in got if f["status"] != "pass"]
    assert bad, why
    assert all(f["status"] == "fail" and f["remediation"] == "manual" and f["message"] for f in bad), why


def test_manual_is_left_for_what_arm_cannot_show(reference_plan):
    manual = {f["check"] for s in reference_plan["steps"] for f in s["findings"] if f["status"] == "manual"}
    assert manual == {"vm-6e", "spoke-6b", "hub-4b"}  # Conditional Access, app sign-in, MG assignments
    assert all(f["remediation"] == "manual" for s in reference_plan["steps"] for f in s["findings"]
               if f["status"] == "manual")


def test_failures_the_wizard_fixes_name_auto_or_create(reference_plan):
    tls = findings_of(reference_plan, "storage-1b")
    assert {(f["status"], f["remediation"]) for f in tls} >= {("fail", "auto")}
    nsg = findings_of(reference_plan, "spoke-3a")
    assert ("fail", "create") in {(f["status"], f["remediation"]) for f in nsg}
    # platform keys: the wizard switches to a customer-managed key once a person names it (--param)
    cmk = findings_of(reference_plan, "storage-1g")
    assert cmk and {(f["status"], f["remediation"]) for f in cmk} == {("fail", "create")}
    # every step of the lift-and-shift estate fails now: none is only "manual"
    assert {s["status"] for s in reference_plan["steps"]} == {"fail"}


# ---- the reports ---------------------------------------------------------------------------------

def test_sarif_level_follows_status_and_remediation_is_a_property(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "--state-dir", str(tmp_path), "--sandbox", "plan", "--format", "sarif",
                           "--check", "storage-1h", "--check", "storage-1b", "--check", "vm-6e")
    assert code == 0
    results = json.loads(out)["runs"][0]["results"]
    by_rule: dict[str, set[tuple[str, str]]] = {}
    for r in results:
        by_rule.setdefault(r["ruleId"], set()).add((r["level"], r["properties"]["remediation"]))
    assert by_rule == {"storage-1h": {("error", "manual")}, "storage-1b": {("error", "auto")},
                       "vm-6e": {("warning", "manual")}}


def test_markdown_and_text_say_who_fixes_each_failure(capsys, tmp_path):
    args = ["--state-dir", str(tmp_path), "--sandbox", "plan", "--check", "storage-1h", "--check", "storage-1b"]
    code, md, _ = run_cli(capsys, *args, "--format", "markdown")
    assert code == 0
    assert "| Check | Resource | Status | Fix |" in md
    assert "| storage-1h | `stcontosofiles` (storageAccounts, rg-storage) | fail | manual fix |" in md
    assert "| fail | auto fix |" in md
    code, text, _ = run_cli(capsys, *args)
    assert code == 0
    g = [line for line in text.splitlines() if "storage-1h" in line and "stcontosofiles" in line]
    assert g and g[0].rstrip().endswith("[manual fix]")
    assert "failing finding(s) need a person to fix them" in text


def test_detailed_exitcode_counts_a_failure_left_to_a_person(capsys, tmp_path):
    state = str(tmp_path)
    code, _, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--detailed-exitcode",
                         "--check", "storage-1h")
    assert code == 2  # no change proposed, but the accounts do not comply
    code, _, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--detailed-exitcode",
                         "--check", "vm-6e")
    assert code == 0  # not judged is not a failure
