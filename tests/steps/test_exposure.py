"""Effective exposure (steps/exposure.py): a port is open to the internet only if the subnet's NSG
and the NIC's NSG both admit it, each by priority with the platform defaults last, and the
admitting rule applies to the VM. vm-6c (and vm-8c, which asks the same) follow it."""

from __future__ import annotations

from typing import Any

import pytest

from ztwizard.inventory import Inventory
from ztwizard.sandbox.estates import load_estate
from ztwizard.steps import CHECK_BY_ID

from .conftest import apply_all, statuses, verdicts
from .test_vm import NET_RG, NSG, VM_ID, inv_of, make_vm, network, nic, nsg, rule

NIC_NSG = f"{NET_RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-nic-web"
ASG_WEB = f"{NET_RG}/providers/Microsoft.Network/applicationSecurityGroups/asg-web"
ASG_DATA = f"{NET_RG}/providers/Microsoft.Network/applicationSecurityGroups/asg-data"


def estate(subnet_rules: list[dict[str, Any]] | None, nic_rules: list[dict[str, Any]] | None = None,
           *, asgs: list[str] | None = None, private_ip: str | None = "10.1.1.4") -> Inventory:
    """One VM whose NIC sits in snet-web; the subnet's NSG and the NIC's NSG hold the given rules
    (None: no NSG at that level)."""
    n = nic(nsg_id=NIC_NSG if nic_rules is not None else None)
    cfg = n["properties"]["ipConfigurations"][0]["properties"]
    if private_ip is None:
        cfg.pop("privateIPAddress")
    else:
        cfg["privateIPAddress"] = private_ip
    if asgs:
        cfg["applicationSecurityGroups"] = [{"id": a} for a in asgs]
    parts: list[Any] = [make_vm(), n, network(subnet_nsg=NSG if subnet_rules is not None else None)]
    if subnet_rules is not None:
        parts.append(nsg(subnet_rules))
    if nic_rules is not None:
        parts.append(nsg(nic_rules, NIC_NSG))
    return inv_of(*parts)


def vm6c(inv: Inventory) -> Any:
    return CHECK_BY_ID["vm-6c"].run(inv)


SSH = rule("AllowSshFromInternet", port="22", source="Internet", priority=100)


def test_a_higher_priority_deny_shadows_the_allow():
    deny = rule("DenyMgmt", port=None, ports=["22", "3389"], source="*", access="Deny", priority=90)
    res = vm6c(estate([deny, SSH]))
    assert statuses(res) == ["pass"] and not res.changes
    # the same deny below the allow (a higher number) closes nothing
    late = rule("DenyMgmt", port=None, ports=["22", "3389"], source="*", access="Deny", priority=200)
    res = vm6c(estate([late, SSH]))
    assert verdicts(res) == ["fail/auto"] and "rule AllowSshFromInternet of NSG nsg-web admits 22" in \
        res.findings[0].message


def test_a_deny_only_shadows_what_it_matches():
    narrow_source = rule("DenyPartner", port="22", source="203.0.113.0/24", access="Deny", priority=90)
    udp_only = rule("DenyUdp", port="22", protocol="Udp", access="Deny", priority=91)
    other_ports = rule("DenyLow", port="20-21", access="Deny", priority=92)
    res = vm6c(estate([narrow_source, udp_only, other_ports, SSH]))
    assert statuses(res) == ["fail"]  # part of the internet, another protocol, other ports: still open
    ranged = rule("DenyRange", port="20-25", access="Deny", priority=90)
    assert statuses(vm6c(estate([ranged, SSH]))) == ["pass"]


def test_the_subnet_nsg_denying_what_the_nic_nsg_allows_closes_the_port():
    deny = rule("DenySshInternet", port="22", source="Internet", access="Deny", priority=100)
    res = vm6c(estate([deny], [SSH]))
    assert statuses(res) == ["pass"] and not res.changes
    # the NIC NSG's defaults (DenyAllInBound) close what the subnet NSG admits
    assert statuses(vm6c(estate([SSH], []))) == ["pass"]
    # both admit: open, each admitting rule named with its NSG and narrowed
    res = vm6c(estate([SSH], [rule("NicSsh", port="22", source="*", priority=300)]))
    msg = res.findings[0].message
    assert statuses(res) == ["fail"] and "of NSG nsg-web" in msg and "rule NicSsh of NSG nsg-nic-web" in msg
    assert sorted(c.resource_id.rsplit("/", 1)[-1] for c in res.changes) == ["AllowSshFromInternet", "NicSsh"]


def test_only_the_admitting_rule_is_narrowed():
    """A rule shadowed by a deny admits nothing, so it is left alone even on a failing VM."""
    deny = rule("DenySsh", port="22", access="Deny", priority=90)
    shadowed = rule("AllowSshAnywhere", port="22", priority=100)
    rdp = rule("AllowRdp", port="3389", priority=110)
    inv = estate([deny, shadowed, rdp])
    res = vm6c(inv)
    assert statuses(res) == ["fail"] and "AllowSshAnywhere" not in res.findings[0].message
    assert [c.resource_id.rsplit("/", 1)[-1] for c in res.changes] == ["AllowRdp"]
    assert statuses(vm6c(apply_all(inv, res.changes))) == ["pass"]


@pytest.mark.parametrize("dest, in_asgs, open_", [
    ([ASG_WEB], [ASG_WEB], True),     # an ASG the NIC is in
    ([ASG_DATA], [ASG_WEB], False),   # another tier's ASG: not this VM
    ([ASG_DATA], [], False),
])
def test_asg_scoped_rules_apply_to_their_members_only(dest, in_asgs, open_):
    r = rule("AllowSshToAsg", port="22")
    r["properties"].pop("destinationAddressPrefix")
    r["properties"]["destinationApplicationSecurityGroups"] = [{"id": a} for a in dest]
    assert statuses(vm6c(estate([r], asgs=in_asgs))) == (["fail"] if open_ else ["pass"])


def test_an_asg_scoped_deny_shadows_for_its_members_only():
    deny = rule("DenySshWeb", port="22", access="Deny", priority=90)
    deny["properties"].pop("destinationAddressPrefix")
    deny["properties"]["destinationApplicationSecurityGroups"] = [{"id": ASG_WEB}]
    assert statuses(vm6c(estate([deny, SSH], asgs=[ASG_WEB]))) == ["pass"]
    assert statuses(vm6c(estate([deny, SSH], asgs=[ASG_DATA]))) == ["fail"]


@pytest.mark.parametrize("prefix, open_", [
    ("10.1.1.4/32", True), ("10.1.1.4", True), ("10.1.0.0/16", True), ("VirtualNetwork", True),
    ("10.9.0.0/16", False), ("10.1.1.5/32", False), ("Storage", False),
])
def test_prefix_scoped_rules_apply_when_they_hold_the_nic_address(prefix, open_):
    r = rule("AllowSshToPrefix", port="22")
    r["properties"]["destinationAddressPrefix"] = prefix
    assert statuses(vm6c(estate([r]))) == (["fail"] if open_ else ["pass"]), prefix


def test_an_unknown_address_can_open_but_never_close():
    to_prefix = rule("AllowSshToPrefix", port="22")
    to_prefix["properties"]["destinationAddressPrefix"] = "10.1.1.0/24"
    assert statuses(vm6c(estate([to_prefix], private_ip=None))) == ["fail"]
    deny = rule("DenyToPrefix", port="22", access="Deny", priority=90)
    deny["properties"]["destinationAddressPrefix"] = "10.1.1.0/24"
    assert statuses(vm6c(estate([deny, SSH], private_ip=None))) == ["fail"]
    assert statuses(vm6c(estate([deny, SSH]))) == ["pass"]  # known, inside the prefix: closed


def test_defaults_only_admit_nothing_from_the_internet():
    assert statuses(vm6c(estate([]))) == ["pass"]
    assert statuses(vm6c(estate([], []))) == ["pass"]
    # AllowVnetInBound / AllowAzureLoadBalancerInBound copied as custom rules are no internet source
    vnet = rule("VnetSsh", port="22", source="VirtualNetwork")
    lb = rule("LbSsh", port="22", source="AzureLoadBalancer", priority=110)
    assert statuses(vm6c(estate([vnet, lb]))) == ["pass"]


def test_port_lists_ranges_and_any_protocol_open():
    for r in (rule("List", port=None, ports=["80", "3380-3390"]), rule("Star", port="*", protocol="*"),
              rule("Udp", port="3389", protocol="Udp")):
        res = vm6c(estate([r]))
        assert statuses(res) == ["fail"], r["name"]
        assert res.findings[0].actual == [f"{NSG}/securityRules/{r['name']}"]


def test_no_nsg_on_the_path_names_no_rule():
    assert statuses(vm6c(estate(None))) == ["pass"]  # spoke-3a asks for the subnet's NSG


def test_vm_8c_asks_the_same_question():
    deny = rule("DenyMgmt", port=None, ports=["22", "3389"], access="Deny", priority=90)
    jit = CHECK_BY_ID["vm-8c"]
    assert statuses(jit.run(estate([deny, SSH]))) == ["pass"]
    assert "fail" in statuses(jit.run(estate([SSH])), VM_ID)


def test_the_reference_estate_with_a_shadowing_deny_has_no_open_port(sandbox, arm_client):
    """The issue's case, through the real azure-mgmt client and the sandbox: a priority-90 deny
    of 22,3389 from * above AllowSshFromInternet leaves no VM open and nothing to narrow."""
    from azure.mgmt.network import NetworkManagementClient

    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.target import in_process_target

    sb = sandbox(estate=load_estate("reference"), lro_seconds=0)
    gw = Gateway(in_process_target(sb))
    before = inspect(gw, check_ids=["vm-6c", "vm-8c"])
    assert [f.status for f in before.steps[0].findings].count("fail") == 4 and before.changes()
    nsg_id = next(r["id"] for r in load_estate("reference") if r.get("name") == "nsg-spoke-prod")
    sub, rg = nsg_id.split("/")[2], nsg_id.split("/")[4]
    net = arm_client(NetworkManagementClient, sb, sub)
    net.security_rules.begin_create_or_update(rg, "nsg-spoke-prod", "DenyMgmtFromAnywhere", {"properties": {
        "priority": 90, "direction": "Inbound", "access": "Deny", "protocol": "*", "sourcePortRange": "*",
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
        "destinationPortRanges": ["22", "3389"]}}).result()
    after = inspect(gw, check_ids=["vm-6c", "vm-8c"])
    assert {f.status for s in after.steps for f in s.findings} == {"pass"} and not after.changes()


# ---- the fix: narrow the admitting rule, or (a parameter) a deny above it -----------------------

def test_deny_above_is_a_parameter_choice_that_keeps_the_rule():
    from ztwizard.engine import edit_change, make_plan

    wide = rule("AllowMgmtAndWeb", port=None, ports=["22", "443"], priority=200)
    taken = rule("AllowHttp", port="80", priority=199)
    inv = estate([taken, wide])
    plan = make_plan(inv, check_ids=["vm-6c"])
    (narrow,) = plan.changes()
    assert narrow.params == {"fix": "narrow"} and narrow.action == "update"
    edit_change(inv, plan, narrow.id, {"fix": "deny-above"})
    (deny,) = plan.changes()
    assert deny.id == narrow.id and deny.action == "create" and deny.params == {"fix": "deny-above"}
    assert deny.resource_id == f"{NSG}/securityRules/DenyMgmtAboveAllowMgmtAndWeb"
    p = deny.body["properties"]
    assert (p["access"], p["priority"], p["destinationPortRanges"], p["sourceAddressPrefix"]) == \
        ("Deny", 198, ["22"], "*")  # 199 is taken; only the port the rule admits
    assert [f.remediation for f in plan.steps[0].findings] == ["create"]
    after = apply_all(inv, [deny])
    assert statuses(vm6c(after)) == ["pass"]
    kept = after.get(f"{NSG}/securityRules/AllowMgmtAndWeb")
    assert kept and kept["properties"]["destinationPortRanges"] == ["22", "443"]  # its other flow untouched
    with pytest.raises(Exception, match="is not one of"):
        edit_change(inv, plan, narrow.id, {"fix": "delete"})


def test_deny_above_through_the_cli_applies_passes_and_undoes(tmp_path, capsys, monkeypatch, arm_client):
    import json

    from azure.mgmt.network import NetworkManagementClient

    from ztwizard.cli import main
    from ztwizard.sandbox import Sandbox

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    state = str(tmp_path / "s")
    Sandbox(tmp_path / "s", estate="reference")

    def cli(*args: str) -> tuple[int, str]:
        code = main(["--sandbox", "--state-dir", state, *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, out = cli("plan", "--check", "vm-6c", "--format", "json")
    changes = {c["resource_id"].rsplit("/", 1)[-1]: c for s in json.loads(out)["steps"] for c in s["changes"]}
    ssh = changes["AllowSshFromInternet"]
    code, out = cli("apply", "--step", "vm-2", "--step", "vm-6", "--yes", "--allow-disruptive", "--allow-cost",  # Bastion first
                    "--param", f"{ssh['id']}.fix=deny-above")
    assert code == 0, out
    nsg_id = ssh["resource_id"].rsplit("/securityRules/", 1)[0]
    sub, rg = nsg_id.split("/")[2], nsg_id.split("/")[4]
    net = arm_client(NetworkManagementClient, Sandbox(tmp_path / "s"), sub)
    rules = {r.name: r for r in net.network_security_groups.get(rg, "nsg-spoke-prod").security_rules}
    assert rules["DenyMgmtAboveAllowSshFromInternet"].access == "Deny"
    assert rules["DenyMgmtAboveAllowSshFromInternet"].priority < rules["AllowSshFromInternet"].priority
    assert rules["AllowSshFromInternet"].destination_port_ranges == ["22", "8022-8023"]  # left as it was
    code, out = cli("plan", "--check", "vm-6c", "--format", "json")
    assert {f["status"] for s in json.loads(out)["steps"] for f in s["findings"]} == {"pass"}
    code, out = cli("undo", "--yes")
    assert code == 0, out
    net = arm_client(NetworkManagementClient, Sandbox(tmp_path / "s"), sub)  # the state as undo left it
    names = {r.name for r in net.network_security_groups.get(rg, "nsg-spoke-prod").security_rules}
    assert "DenyMgmtAboveAllowSshFromInternet" not in names and "AllowSshFromInternet" in names
    code, out = cli("plan", "--check", "vm-6c", "--format", "json")
    assert "fail" in {f["status"] for s in json.loads(out)["steps"] for f in s["findings"]}
