"""`-g` means scope: no subscription-wide change is proposed (Defender plans, security settings,
activity-log settings, subscription role definitions), the plan says each was left out because of
`-g`, and a `-g` naming no existing resource group is an input error (exit 2) with a hint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.security import SecurityCenter

from ztwizard.cli import main
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates.reference import CONNECTIVITY_SUB, WORKLOAD_SUB


@pytest.fixture
def state(tmp_path: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    Sandbox(tmp_path / "s", estate="reference")
    return tmp_path / "s"


def run(capsys: Any, state: Any, *args: str) -> tuple[int, str, str]:
    code = main(["--sandbox", "--state-dir", str(state), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def plan_json(capsys: Any, state: Any, *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, state, *args, "plan", "--format", "json")
    assert code == 0, err
    plan: dict[str, Any] = json.loads(out)
    return plan


def subscription_wide(resource_id: str) -> bool:
    return "/resourcegroups/" not in resource_id.lower()


def test_without_g_the_reference_plan_changes_subscription_wide_settings(capsys, state):
    plan = plan_json(capsys, state)
    kinds = {c["resource_id"].split("/providers/")[-1].split("/")[1] for s in plan["steps"] for c in s["changes"]
             if subscription_wide(c["resource_id"])}
    assert {"pricings", "settings", "diagnosticSettings", "roleDefinitions"} <= kinds
    assert not [n for n in plan["notes"] if n["kind"] == "scope"]


@pytest.mark.parametrize("group", ["rg-vms", "rg-spoke-network", "rg-hub-network", "rg-storage"])
def test_with_g_no_subscription_wide_change_is_proposed_and_each_is_noted(capsys, state, group):
    plan = plan_json(capsys, state, "-g", group)
    changes = [c for s in plan["steps"] for c in s["changes"]]
    assert changes and all(f"/resourcegroups/{group}/" in c["resource_id"].lower() for c in changes)
    notes = [n for n in plan["notes"] if n["kind"] == "scope"]
    assert notes and all(f"left out because of -g {group}" in n["message"] for n in notes)
    assert all(subscription_wide(n["resource_id"]) for n in notes)
    noted = {n["check"] for n in notes}
    assert {"storage-4a", "vm-8a", "vm-8b"} <= noted  # Defender plans and the WDATP security setting
    assert plan["summary"]["changes"] == len(changes)


def test_the_activity_log_and_custom_roles_are_noted_too(capsys, state):
    plan = plan_json(capsys, state, "-g", "rg-spoke-network")
    notes = {n["check"]: n["message"] for n in plan["notes"] if n["kind"] == "scope"}
    # the activity-log export's workspace lies outside rg-spoke-network, so no change was even built
    assert "spoke-2c" in notes and WORKLOAD_SUB in notes["spoke-2c"]
    assert "spoke-1b" in notes and "spoke-7a" in notes
    code, text, _ = run(capsys, state, "-g", "rg-spoke-network", "plan", "--step", "spoke-2")
    assert code == 0 and "note: spoke-2c" in text and "left out because of -g rg-spoke-network" in text
    code, md, _ = run(capsys, state, "-g", "rg-spoke-network", "plan", "--step", "spoke-2", "--format", "markdown")
    assert "## Notes" in md and "left out because of -g rg-spoke-network" in md


def _pricings(arm_client: Any, state: Any) -> dict[str, Any]:
    sb = Sandbox(state)
    out = {}
    for sub in (WORKLOAD_SUB, CONNECTIVITY_SUB):
        client = arm_client(SecurityCenter, sb, sub)
        for p in client.pricings.list(f"subscriptions/{sub}").value:
            out[p.id.lower()] = (p.pricing_tier, p.sub_plan)
    return out


def test_apply_with_g_leaves_every_defender_plan_as_it_was(capsys, state, arm_client):
    before = _pricings(arm_client, state)
    code, out, err = run(capsys, state, "-g", "rg-hub-network", "apply", "--yes", "--allow-cost",
                         "--allow-disruptive")
    assert code == 0, out + err
    assert _pricings(arm_client, state) == before
    assert any(tier == "Free" for tier, _ in before.values())


@pytest.mark.parametrize("args, missing", [
    (["-g", "rg-nope"], "rg-nope"),
    (["-g", "rg-vms", "-g", "rg-nope"], "rg-nope"),                        # one bad name of several
    (["-s", CONNECTIVITY_SUB, "-g", "rg-vms"], "rg-vms"),                 # exists, in another subscription
])
@pytest.mark.parametrize("command", [["plan"], ["apply", "--yes"], ["plan", "--out", "PLANFILE"]])
def test_g_naming_no_existing_group_is_exit_2_with_a_hint(capsys, state, tmp_path, arm_client, args, missing,
                                                          command):
    command = [str(tmp_path / "p.json") if c == "PLANFILE" else c for c in command]
    before = _pricings(arm_client, state)
    code, out, err = run(capsys, state, *args, *command)
    assert code == 2, out + err
    assert f"Resource group '{missing}' does not exist" in err and "hint:" in err and "-g" in err
    assert "Traceback" not in err and not out
    assert not (tmp_path / "p.json").exists()  # no partial write
    assert _pricings(arm_client, state) == before
    if "-s" in args:
        assert f"subscription {CONNECTIVITY_SUB}" in err


# ---- --management-group and -g: bad input is refused before anything is read ---------------------

@pytest.mark.parametrize("args, needle", [
    (["--management-group", ""], "Management group id '' is not valid"),
    (["--management-group", "mg-corp?x=1"], "Management group id 'mg-corp?x=1' is not valid"),
    (["--management-group", "mg/../../subscriptions"], "is not valid"),
    (["--management-group", "mg corp"], "is not valid"),
    (["--management-group", "mg-corp."], "is not valid"),                  # may not end in a period
    (["--management-group", "m" * 91], "is not valid"),                    # at most 90 characters
    (["-g", ""], "Resource group name '' is not valid"),
    (["-g", "rg-vms", "-g", ""], "Resource group name '' is not valid"),
])
@pytest.mark.parametrize("command", [["plan", "--out", "PLANFILE"], ["apply", "--yes"]])
def test_a_malformed_management_group_or_empty_g_is_exit_2_before_any_read(capsys, state, tmp_path, arm_client,
                                                                          args, needle, command):
    command = [str(tmp_path / "p.json") if c == "PLANFILE" else c for c in command]
    before = _pricings(arm_client, state)
    code, out, err = run(capsys, state, *args, *command)
    assert code == 2, out + err
    assert needle in err and "hint:" in err and "Traceback" not in err and not out
    assert len(err.strip().splitlines()) == 2  # one sentence, one hint
    assert not (tmp_path / "p.json").exists()
    assert _pricings(arm_client, state) == before


def test_an_estate_file_has_no_management_groups(capsys, tmp_path):
    code = main(["--estate", "reference", "--management-group", "mg-platform", "plan"])
    out = capsys.readouterr()
    assert code == 2 and "--management-group" in out.err and "hint:" in out.err and not out.out


# ---- -g and an empty scope under --management-group -----------------------------------------------

@pytest.fixture
def scale_state(tmp_path: Any, monkeypatch: Any) -> Any:
    """scale:600 (mg-platform: 2 subscriptions, mg-corp and mg-online under mg-landingzones), with
    a resource group only one platform subscription holds."""
    from ztwizard.sandbox import management
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.sandbox.estates.reference import _resource

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    estate = list(load_estate("scale:600"))
    subs = sorted({r["id"].split("/")[2] for r in estate}, key=str.lower)
    groups = management.hierarchy("t", subs)
    platform = groups["mg-platform"][1][0]
    estate.append(_resource(f"/subscriptions/{platform}/resourceGroups/rg-platform-only",
                            "Microsoft.Resources/resourceGroups", {}, location="westeurope", etag=False))
    sb = Sandbox(tmp_path / "s", estate=estate)
    return tmp_path / "s", sb, groups


def test_g_is_checked_against_the_subscriptions_under_the_management_group(capsys, scale_state, tmp_path):
    state, _sb, groups = scale_state
    assert plan_json(capsys, state, "--management-group", "mg-platform", "-g", "rg-platform-only")["steps"]
    code, out, err = run(capsys, state, "--management-group", "mg-corp", "-g", "rg-platform-only",
                         "plan", "--out", str(tmp_path / "p.json"))
    assert code == 2, out + err
    assert "Resource group 'rg-platform-only' does not exist" in err and "mg-corp" in err and "hint:" in err
    assert not out and "Traceback" not in err and not (tmp_path / "p.json").exists()


def test_a_management_group_without_subscriptions_is_exit_2(capsys, state, tmp_path):
    # the reference estate's two subscriptions are both in mg-platform: mg-landingzones is empty
    code, out, err = run(capsys, state, "--management-group", "mg-landingzones", "plan", "--out",
                         str(tmp_path / "p.json"))
    assert code == 2, out + err
    assert "Management group mg-landingzones holds no subscription" in err and "hint:" in err
    assert not out and not (tmp_path / "p.json").exists()
    code, out, err = run(capsys, state, "--management-group", "mg-landingzones", "apply", "--yes")
    assert code == 2 and "holds no subscription" in err and not out


def test_a_management_group_whose_subscriptions_are_all_disabled_is_exit_2_naming_them(capsys, scale_state):
    state, sb, groups = scale_state
    for sub in groups["mg-platform"][1]:
        sb.store.subscriptions[sub.lower()]["state"] = "Disabled"
    sb._save(full=True)
    code, out, err = run(capsys, state, "--management-group", "mg-platform", "plan")
    assert code == 2, out + err
    assert "holds no enabled subscription" in err and all(s in err for s in groups["mg-platform"][1])
    assert "Disabled" in err and "hint:" in err and not out


def test_skipped_subscriptions_are_said_in_the_plan_and_by_apply(capsys, scale_state):
    """Disabled and deleted subscriptions are left out and the person is told (the log, off by
    default, was the only place that said so); Warned and PastDue ones still work, and are read."""
    state, sb, groups = scale_state
    corp, platform = groups["mg-corp"][1], groups["mg-platform"][1]
    states = {corp[0]: "Disabled", corp[1]: "Deleted", corp[2]: "Warned", corp[3]: "PastDue",
              platform[0]: "Disabled"}
    for sub, st in states.items():
        sb.store.subscriptions[sub.lower()]["state"] = st
    sb._save(full=True)

    plan = plan_json(capsys, state, "--management-group", "mg-corp")
    assert sorted(s.lower() for s in plan["target"]["subscriptions"]) == sorted(s.lower() for s in corp[2:])
    skipped = {n["subscription"]: n["message"] for n in plan["notes"] if n["kind"] == "subscription_skipped"}
    assert set(skipped) == {corp[0], corp[1]}  # not the platform one: it is outside mg-corp
    assert "it is Disabled" in skipped[corp[0]] and "it is Deleted" in skipped[corp[1]]

    plan = plan_json(capsys, state)  # every subscription the sign-in sees
    assert {n["subscription"] for n in plan["notes"] if n["kind"] == "subscription_skipped"} == \
        {corp[0], corp[1], platform[0]}
    code, text, _ = run(capsys, state, "plan", "--step", "vm-1")
    assert code == 0 and f"({platform[0]}) is skipped: it is Disabled" in text
    code, out, err = run(capsys, state, "--management-group", "mg-corp", "apply", "--yes", "--step", "vm-1")
    assert code == 0, out + err
    assert f"({corp[0]}) is skipped: it is Disabled" in out + err
    # -s names the subscriptions: nothing is listed, nothing said skipped
    plan = plan_json(capsys, state, "-s", corp[2])
    assert not [n for n in plan["notes"] if n["kind"] == "subscription_skipped"]
