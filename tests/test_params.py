"""Editing a proposed change's parameters: validated by the rule the check declares, applied by
re-running the check's builder (never by replacing text), kept by re-planning."""

from __future__ import annotations

import copy
import json

import pytest
from steps.conftest import apply_all
from steps.test_spoke import (
    HUB,
    HUB_RG,
    SPOKE,
    SPOKE_RG,
    N,
    firewall,
    hub_vnet,
    rid,
    subnet,
    vnet,
)

from ztwizard.engine import Plan, edit_change, make_plan
from ztwizard.errors import ParamError, UsageError
from ztwizard.inventory import Inventory
from ztwizard.model import Change
from ztwizard.steps import CHECK_BY_ID
from ztwizard.steps.params import RuleError, coerce

GW_SUBNET = f"{HUB}/subnets/GatewaySubnet"


def gateway_estate() -> Inventory:
    """A hub whose firewall is at 10.0.0.4, peered with a spoke that also holds 10.0.0.42/32: a value
    that merely starts with the firewall's address."""
    spoke = vnet(SPOKE_RG, "vnet-spoke", ["10.1.0.0/16", "10.0.0.42/32"], [subnet("snet-app", "10.1.2.0/24")],
                 peer_to=HUB)
    return Inventory.from_resources([hub_vnet(), firewall(private_ip="10.0.0.4"), spoke])


def hub3_plan(inv: Inventory) -> tuple[Plan, Change, Change]:
    plan = make_plan(inv, step_ids=["hub-3"])
    step = plan.step("hub-3")
    create = next(c for c in step.changes if c.check == "hub-3a" and c.action == "create")
    assoc = next(c for c in step.changes if c.check == "hub-3a" and create.id in c.depends_on)
    return plan, create, assoc


def routes(change: Change) -> list[tuple[str, str]]:
    return [(r["properties"]["addressPrefix"], r["properties"]["nextHopIpAddress"])
            for r in change.body["properties"]["routes"]]


def test_editing_the_firewall_ip_changes_next_hops_only():
    inv = gateway_estate()
    plan, create, _ = hub3_plan(inv)
    assert create.params == {"name": create.params["name"], "firewallIp": "10.0.0.4"}
    assert sorted(routes(create)) == [("10.0.0.42/32", "10.0.0.4"), ("10.1.0.0/16", "10.0.0.4")]

    edit_change(inv, plan, create.id, {"firewallIp": "10.0.0.5"})
    _, edited, _ = hub3_plan_from(plan)
    assert edited.id == create.id
    # the prefix 10.0.0.42/32 stays as it is; a text replace would have made it 10.0.0.52/32
    assert sorted(routes(edited)) == [("10.0.0.42/32", "10.0.0.5"), ("10.1.0.0/16", "10.0.0.5")]
    assert edited.after == edited.body and edited.params["firewallIp"] == "10.0.0.5"
    assert "10.0.0.52" not in json.dumps(plan.to_dict())


def hub3_plan_from(plan: Plan) -> tuple[Plan, Change, Change]:
    step = plan.step("hub-3")
    create = next(c for c in step.changes if c.check == "hub-3a" and c.action == "create")
    assoc = next(c for c in step.changes if c.check == "hub-3a" and create.id in c.depends_on)
    return plan, create, assoc


def test_renaming_the_route_table_moves_the_create_and_its_association():
    inv = gateway_estate()
    plan, create, assoc = hub3_plan(inv)
    old_name = create.params["name"]
    new_id = rid(HUB_RG, f"{N}/routeTables", "rt-gw-to-firewall")

    edit_change(inv, plan, create.id, {"name": "rt-gw-to-firewall"})
    _, edited, new_assoc = hub3_plan_from(plan)
    assert (edited.id, new_assoc.id) == (create.id, assoc.id)  # stable, so the journal recognises them
    assert edited.resource_id == new_id and edited.params["name"] == "rt-gw-to-firewall"
    assert new_assoc.body["properties"]["routeTable"] == {"id": new_id}
    assert new_assoc.after == {"properties": {"routeTable": {"id": new_id}}}
    assert "rt-gw-to-firewall" in edited.title and old_name not in edited.title
    # applied as ARM would, the edited plan fixes the finding
    after = make_plan(apply_all(inv, plan.step("hub-3").changes), check_ids=["hub-3a"])
    assert {f.status for f in after.step("hub-3").findings} == {"pass"}
    assert after.step("hub-3").findings[0].resource_id == GW_SUBNET


def nsg_estate() -> Inventory:
    """A bare subnet whose other properties hold text containing the NSG name the wizard will
    propose (nsg-snet-app): a route table called rt-nsg-snet-app-legacy, an endpoint policy."""
    legacy_rt = rid(SPOKE_RG, f"{N}/routeTables", "rt-nsg-snet-app-legacy")
    sn = subnet("snet-app", "10.1.2.0/24", rt=legacy_rt,
                serviceEndpoints=[{"service": "Microsoft.Storage", "locations": ["nsg-snet-app-region"]}])
    rt = {"id": legacy_rt, "name": "rt-nsg-snet-app-legacy", "type": f"{N}/routeTables", "location": "westeurope",
          "tags": {"replaces": "nsg-snet-app"}, "properties": {"routes": []}}
    return Inventory.from_resources([vnet(SPOKE_RG, "vnet-spoke", ["10.1.0.0/16"], [sn]), rt])


def spoke3_changes(plan: Plan) -> tuple[Change, Change]:
    step = plan.step("spoke-3")
    create = next(c for c in step.changes if c.check == "spoke-3a" and c.action == "create")
    assoc = next(c for c in step.changes if c.check == "spoke-3a" and create.id in c.depends_on)
    return create, assoc


def test_renaming_an_nsg_rewrites_nothing_that_merely_contains_its_name():
    inv = nsg_estate()
    plan = make_plan(inv, step_ids=["spoke-3"])
    create, assoc = spoke3_changes(plan)
    assert create.params == {"name": "nsg-snet-app"}
    before_assoc = copy.deepcopy(assoc.body)

    edit_change(inv, plan, create.id, {"name": "nsg-app-tier"})
    create2, assoc2 = spoke3_changes(plan)
    new_id = rid(SPOKE_RG, f"{N}/networkSecurityGroups", "nsg-app-tier")
    assert create2.id == create.id and create2.resource_id == new_id
    expected = copy.deepcopy(before_assoc)
    expected["properties"]["networkSecurityGroup"] = {"id": new_id}
    # the route table id, the endpoint location and the table's tag keep the old text
    assert assoc2.body == expected
    assert assoc2.body["properties"]["routeTable"]["id"].endswith("rt-nsg-snet-app-legacy")
    assert inv.get(rid(SPOKE_RG, f"{N}/routeTables", "rt-nsg-snet-app-legacy"))["tags"] == {"replaces": "nsg-snet-app"}
    assert not any("nsg-app-tier" in json.dumps(c.body) for s in plan.steps for c in s.changes
                   if c.check != "spoke-3a")


@pytest.mark.parametrize("values, words", [
    ({"name": "bad name!"}, ["name", "'bad name!'", "network security group name", "1-80"]),
    ({"name": "-leading"}, ["name", "network security group name"]),
    ({"name": "x" * 81}, ["network security group name"]),
    ({"colour": "blue"}, ["no parameter 'colour'"]),
])
def test_an_invalid_edit_is_refused_with_the_rule_and_changes_nothing(values, words):
    inv = nsg_estate()
    plan = make_plan(inv, step_ids=["spoke-3"])
    before = json.dumps(plan.to_dict(), sort_keys=True)
    create, _ = spoke3_changes(plan)
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, create.id, values)
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2 and err.value.hint
    for w in words:
        assert w in err.value.message, err.value.message
    assert json.dumps(plan.to_dict(), sort_keys=True) == before and not plan.overrides


def test_the_exact_message_of_a_bad_nsg_name():
    inv = nsg_estate()
    plan = make_plan(inv, step_ids=["spoke-3"])
    create, _ = spoke3_changes(plan)
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, create.id, {"name": "bad name!"})
    assert err.value.message == ("Parameter name = 'bad name!' is not a valid network security group name: 1-80 "
                                 "letters, digits, '_', '.', '-', starting with a letter or digit and not ending "
                                 "in '.' or '-'.")


def test_unknown_parameter_lists_the_valid_ones_and_bad_ip_is_refused():
    inv = gateway_estate()
    plan, create, _ = hub3_plan(inv)
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, create.id, {"firewall_ip": "10.0.0.5"})
    assert "name, firewallIp" in err.value.hint
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, create.id, {"firewallIp": "10.0.0.256"})
    assert "IPv4 address" in err.value.message
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, "hub-3a-nope", {"name": "x"})
    assert "No proposed change" in err.value.message


def test_a_name_already_taken_is_refused():
    inv = nsg_estate()
    taken = {"id": rid(SPOKE_RG, f"{N}/networkSecurityGroups", "nsg-in-use"), "name": "nsg-in-use",
             "type": f"{N}/networkSecurityGroups", "location": "westeurope", "properties": {"securityRules": []}}
    inv = Inventory.from_resources([*inv.resources.values(), taken])
    plan = make_plan(inv, step_ids=["spoke-3"])
    create, _ = spoke3_changes(plan)
    with pytest.raises(ParamError, match="already exists"):
        edit_change(inv, plan, create.id, {"name": "nsg-in-use"})


def test_edits_persist_when_the_plan_is_made_again_and_in_its_json():
    inv = gateway_estate()
    plan, create, _ = hub3_plan(inv)
    edit_change(inv, plan, create.id, {"firewallIp": "10.0.0.5", "name": "rt-edge"})
    edit_change(inv, plan, create.id, {"firewallIp": "10.0.0.6"})  # a second edit keeps the first's name
    assert plan.overrides == {create.id: {"firewallIp": "10.0.0.6", "name": "rt-edge"}}
    again = make_plan(inv, step_ids=["hub-3"], overrides=plan.overrides)
    _, create2, _ = hub3_plan_from(again)
    assert create2.resource_id.endswith("/routeTables/rt-edge") and create2.params["firewallIp"] == "10.0.0.6"
    assert plan.to_dict()["overrides"] == plan.overrides


def test_integer_parameter_is_coerced_and_range_checked():
    from steps.test_storage import account  # a storage account without a Defender setting

    inv = Inventory.from_resources([account()])
    plan = make_plan(inv, check_ids=["storage-4c"])
    (change,) = plan.step("storage-4").changes
    assert change.action == "create" and change.params == {"cap_gb_per_month": 5000}
    edit_change(inv, plan, change.id, {"cap_gb_per_month": "250"})
    (edited,) = plan.step("storage-4").changes
    assert edited.id == change.id and edited.params == {"cap_gb_per_month": 250}
    assert edited.body["properties"]["malwareScanning"]["onUpload"]["capGBPerMonth"] == 250
    with pytest.raises(ParamError, match="whole number from 1 to 1000000"):
        edit_change(inv, plan, change.id, {"cap_gb_per_month": "lots"})


def test_a_change_without_declared_parameters_is_not_editable():
    inv = nsg_estate()
    plan = make_plan(inv, step_ids=["spoke-3"])
    _, assoc = spoke3_changes(plan)
    with pytest.raises(ParamError, match="no parameters"):
        edit_change(inv, plan, assoc.id, {"name": "x"})


@pytest.mark.parametrize("rule, value, result", [
    ("name:storageAccounts", "stdata01", "stdata01"),
    ("name:routeTables", "a", "a"),
    ("ipv4", " 10.0.0.5 ", "10.0.0.5"),
    ("int:1..10", "7", 7),
    ("enum:Detection|Prevention", "prevention", "Prevention"),
    ("duration", "PT3H", "PT3H"),
    ("resource-id:Microsoft.Network/virtualNetworks/subnets", f"{SPOKE}/subnets/snet-app", f"{SPOKE}/subnets/snet-app"),
])
def test_rules_admit_good_values(rule, value, result):
    assert coerce(rule, value) == result


@pytest.mark.parametrize("rule, value", [
    ("name:storageAccounts", "StData01"), ("name:storageAccounts", "st"), ("name:routeTables", "rt."),
    ("ipv4", "10.0.0"), ("int:1..10", "11"), ("enum:Detection|Prevention", "Off"), ("duration", "3 hours"),
    ("resource-id:Microsoft.Network/virtualNetworks/subnets", f"{SPOKE}"),
    ("resource-id:Microsoft.Network/virtualNetworks/subnets", "snet-app"),
])
def test_rules_refuse_bad_values(rule, value):
    with pytest.raises(RuleError):
        coerce(rule, value)


def test_every_create_that_carries_parameters_declares_them_or_is_reported():
    """Creates whose check declares its parameters are editable; the rest are listed here so a
    conversion that forgets one is noticed (they move as their article is converted)."""
    from ztwizard.sandbox.estates import reference

    inv = Inventory.from_resources(reference.build())
    plan = make_plan(inv)
    undeclared = sorted({c.check for s in plan.steps for c in s.changes
                         if c.params and not all(CHECK_BY_ID[c.check].param(k) for k in c.params)})
    declared = sorted({c.check for s in plan.steps for c in s.changes
                       if c.params and all(CHECK_BY_ID[c.check].param(k) for k in c.params)})
    assert {"hub-3a", "spoke-3a", "storage-3a", "storage-4b", "storage-4c"} <= set(declared)
    assert not [c for c in undeclared if c.startswith("storage-")], undeclared


def test_renaming_a_spoke_route_table_moves_every_subnet_that_joins_it():
    from steps.test_spoke import estate

    inv = Inventory.from_resources(estate())
    plan = make_plan(inv, step_ids=["hub-3"])
    step = plan.step("hub-3")
    create = next(c for c in step.changes if c.check == "hub-3b" and c.action == "create")
    joins = [c for c in step.changes if create.id in c.depends_on]
    assert len(joins) == 2  # snet-web and snet-app share the new table

    edit_change(inv, plan, create.id, {"name": "rt-spoke-egress", "firewallIp": "10.0.1.5"})
    step = plan.step("hub-3")
    edited = next(c for c in step.changes if c.id == create.id)
    new_id = rid(SPOKE_RG, f"{N}/routeTables", "rt-spoke-egress")
    assert edited.resource_id == new_id
    assert edited.body["properties"]["routes"][0]["properties"]["nextHopIpAddress"] == "10.0.1.5"
    moved = [c for c in step.changes if create.id in c.depends_on]
    assert sorted(c.id for c in moved) == sorted(c.id for c in joins)
    assert all(c.body["properties"]["routeTable"] == {"id": new_id} for c in moved)
    assert all("rt-spoke-egress" in c.title for c in moved)
    # the hub-3a changes of the same step are untouched by an edit of hub-3b
    assert [c.to_dict() for c in step.changes if c.check == "hub-3a"] == \
        [c.to_dict() for c in make_plan(inv, step_ids=["hub-3"]).step("hub-3").changes if c.check == "hub-3a"]


# ---- vm article: the creates of vm-2b, vm-3d, vm-6a, vm-6d, vm-7a and vm-8c -------------------

from steps import test_vm as vmt  # noqa: E402  (the VM article's estate builders)


def vm6_estate() -> Inventory:
    """A VM with a public IP and RDP open to the internet, in a spoke peered with a hub that has an
    AzureBastionSubnet but no Bastion: vm-6a proposes one, vm-6b and vm-6c wait for it."""
    return vmt.inv_of(vmt.make_vm(), vmt.nic(public_ip=True), vmt.network(), vmt.nsg([vmt.rule("AllowRdp")]))


def vm6_changes(plan: Plan) -> tuple[Change, Change, list[Change]]:
    step = plan.step("vm-6")
    pip = next(c for c in step.changes if c.check == "vm-6a" and "/publicIPAddresses/" in c.resource_id)
    bas = next(c for c in step.changes if c.check == "vm-6a" and "/bastionHosts/" in c.resource_id)
    waiting = [c for c in step.changes if c.check in ("vm-6b", "vm-6c")]
    return pip, bas, waiting


def test_renaming_the_bastion_and_its_public_ip_rebuilds_both_and_what_waits_for_them():
    inv = vm6_estate()
    plan = make_plan(inv, step_ids=["vm-6"])
    pip, bas, waiting = vm6_changes(plan)
    assert bas.params == {"name": "bas-hub-weu", "sku": "Basic"} and pip.params == {"publicIpName": "pip-bas-hub-weu"}
    assert len(waiting) == 2 and all(c.depends_on == [bas.id] for c in waiting)

    edit_change(inv, plan, bas.id, {"name": "bas-admin", "sku": "standard"})
    edit_change(inv, plan, pip.id, {"publicIpName": "pip-admin"})
    pip2, bas2, waiting2 = vm6_changes(plan)
    assert (pip2.id, bas2.id) == (pip.id, bas.id)  # ids come from the subnet, not the names
    assert bas2.resource_id == f"{vmt.HUB_RG}/providers/Microsoft.Network/bastionHosts/bas-admin"
    assert bas2.body["name"] == "bas-admin" and bas2.body["sku"] == {"name": "Standard"}  # the rule's spelling
    assert pip2.resource_id.endswith("/publicIPAddresses/pip-admin") and pip2.body["name"] == "pip-admin"
    ipc = bas2.body["properties"]["ipConfigurations"][0]["properties"]
    assert ipc["publicIPAddress"] == {"id": pip2.resource_id} and bas2.depends_on == [pip2.id]
    assert "bas-admin" in bas2.title and "pip-admin" in pip2.title and "bas-hub-weu" not in bas2.title
    assert [c.to_dict() for c in waiting2] == [c.to_dict() for c in waiting]  # still wait for the same id
    assert plan.overrides == {bas.id: {"name": "bas-admin", "sku": "Standard"}, pip.id: {"publicIpName": "pip-admin"}}
    # applied as ARM would, the renamed Bastion makes the VM reachable
    fixed = apply_all(inv, [pip2, bas2])
    assert {f.status for f in make_plan(fixed, check_ids=["vm-6a"]).step("vm-6").findings} == {"pass"}
    assert fixed.get(bas2.resource_id) is not None and fixed.get(bas.resource_id) is None


@pytest.mark.parametrize("field, value, words", [
    ("name", "bas admin", ["name = 'bas admin'", "valid Bastion host name", "1-80"]),
    ("name", "bas-", ["valid Bastion host name"]),
    ("sku", "Developer", ["sku = 'Developer'", "one of Basic, Standard, Premium"]),
    ("publicIpName", "x" * 81, ["valid public IP address name"]),
])
def test_an_invalid_bastion_edit_is_refused_with_its_rule(field, value, words):
    inv = vm6_estate()
    plan = make_plan(inv, step_ids=["vm-6"])
    before = json.dumps(plan.to_dict(), sort_keys=True)
    pip, bas, _ = vm6_changes(plan)
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, pip.id if field == "publicIpName" else bas.id, {field: value})
    for w in words:
        assert w in err.value.message, err.value.message
    assert err.value.exit_code == 2 and err.value.hint
    assert json.dumps(plan.to_dict(), sort_keys=True) == before and not plan.overrides


def test_the_public_ip_edits_only_its_own_name():
    inv = vm6_estate()
    plan = make_plan(inv, step_ids=["vm-6"])
    pip, _, _ = vm6_changes(plan)
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, pip.id, {"sku": "Standard"})
    assert "Its parameters: publicIpName" in err.value.hint


@pytest.mark.parametrize("check_id, step_id, estate", [
    ("vm-3d", "vm-3", lambda: vmt.inv_of(vmt.make_vm(), vmt.disk())),
    ("vm-6d", "vm-6", lambda: vmt.inv_of(vmt.make_vm())),
    ("vm-7a", "vm-7", lambda: vmt.inv_of(vmt.make_vm())),
])
def test_an_extension_version_edit_rebuilds_the_install(check_id, step_id, estate):
    inv = estate()
    plan = make_plan(inv, check_ids=[check_id])
    (change,) = [c for c in plan.step(step_id).changes if c.check == check_id]
    version = change.params["typeHandlerVersion"]
    assert change.body["properties"]["typeHandlerVersion"] == version
    edit_change(inv, plan, change.id, {"typeHandlerVersion": "2.1"})
    (edited,) = [c for c in plan.step(step_id).changes if c.check == check_id]
    assert edited.id == change.id and edited.resource_id == change.resource_id
    assert edited.body["properties"]["typeHandlerVersion"] == "2.1" and edited.after == edited.body
    assert {**edited.body["properties"], "typeHandlerVersion": version} == change.body["properties"]
    for bad in ("latest", "2", "1.0.0", "v1.0"):
        with pytest.raises(ParamError, match="major.minor, such as 1.0"):
            edit_change(inv, plan, change.id, {"typeHandlerVersion": bad})
    assert plan.overrides == {change.id: {"typeHandlerVersion": "2.1"}}


def test_the_jit_duration_edit_reaches_every_port_of_every_vm():
    other = vmt.make_vm("vm-web-02")
    inv = vmt.inv_of(vmt.make_vm(), vmt.nic(), other, vmt.nic("vm-web-02"), vmt.network(bastion=True),
                     vmt.nsg([vmt.rule("AllowRdp"), vmt.rule("AllowSsh", port="22", priority=110)]),
                     vmt.servers_pricing())
    plan = make_plan(inv, check_ids=["vm-8c"])
    (change,) = plan.step("vm-8").changes
    assert change.action == "create" and change.params == {"maxRequestAccessDuration": "PT3H"}
    edit_change(inv, plan, change.id, {"maxRequestAccessDuration": "PT1H"})
    (edited,) = plan.step("vm-8").changes
    ports = [p for v in edited.body["properties"]["virtualMachines"] for p in v["ports"]]
    assert len(ports) == 4 and {p["maxRequestAccessDuration"] for p in ports} == {"PT1H"}
    assert edited.id == change.id and edited.title == change.title
    with pytest.raises(ParamError, match="ISO 8601 duration"):
        edit_change(inv, plan, change.id, {"maxRequestAccessDuration": "1 hour"})
    fixed = apply_all(inv, [edited])
    # JIT does not override the allow rules still there; closing them (vm-6c) completes the fix
    assert {f.status for f in make_plan(fixed, check_ids=["vm-8c"]).step("vm-8").findings} == {"fail"}
    fixed = apply_all(fixed, make_plan(fixed, check_ids=["vm-6c"]).changes())
    assert {f.status for f in make_plan(fixed, check_ids=["vm-8c"]).step("vm-8").findings} == {"pass"}


def test_renaming_the_join_role_keeps_its_definition_id():
    broad = vmt.role_definition([vmt.vm_article.JOIN_ACTION, "Microsoft.Network/*"])
    inv = vmt.inv_of(vmt.make_vm(), broad)
    plan = make_plan(inv, check_ids=["vm-2b"])
    (change,) = plan.step("vm-2").changes
    edit_change(inv, plan, change.id, {"roleName": "Subnet Joiner (workloads)"})
    (edited,) = plan.step("vm-2").changes
    assert (edited.id, edited.resource_id) == (change.id, change.resource_id)
    assert edited.body["properties"]["roleName"] == "Subnet Joiner (workloads)"
    assert edited.title == f"Create the custom role 'Subnet Joiner (workloads)' in subscription {vmt.SUB}"
    with pytest.raises(ParamError, match="roleName = ' ' is not empty"):
        edit_change(inv, plan, change.id, {"roleName": " "})


def test_every_vm_create_declares_its_parameters():
    from ztwizard.sandbox.estates import reference

    plan = make_plan(Inventory.from_resources(reference.build()))
    creates = [c for s in plan.steps for c in s.changes if c.check.startswith("vm-") and c.action == "create"]
    assert {c.check for c in creates} == {"vm-2b", "vm-3d", "vm-4a", "vm-6a", "vm-6d", "vm-7a", "vm-8c"}
    for c in creates:
        assert c.params and all(CHECK_BY_ID[c.check].param(k) for k in c.params), (c.id, c.params)


@pytest.mark.parametrize("rule, value, ok", [
    ("version", "1.0", True), ("version", " 1.30 ", True), ("version", "10", False), ("version", "1.0.0", False),
    ("version", "", False), ("name:bastionHosts", "bas-hub_", True), ("name:bastionHosts", "_bas", False),
    ("name:publicIPAddresses", "pip.bas.1", True), ("name:publicIPAddresses", "pip.", False),
])
def test_the_vm_rules(rule, value, ok):
    if ok:
        assert coerce(rule, value) == value.strip()
    else:
        with pytest.raises(RuleError):
            coerce(rule, value)


def test_a_renamed_bastion_applies_through_the_sandbox(tmp_path):
    """The edited plan goes through the real clients and pipeline: ARM's shape accepts the renamed
    Bastion and public IP with the Standard tier, and the VMs it serves then pass vm-6a."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.target import in_process_target

    gw = Gateway(in_process_target(Sandbox(None, estate=load_estate("reference"), lro_seconds=0)))
    inv = gw.inventory()
    plan = make_plan(inv, check_ids=["vm-6a"], api_version_for=gw.api_version_for)
    changes = plan.step("vm-6").changes
    bas = next(c for c in changes if "/bastionHosts/" in c.resource_id)
    pip = next(c for c in changes if "/publicIPAddresses/" in c.resource_id)
    edit_change(inv, plan, bas.id, {"name": "bas-edited", "sku": "Standard"})
    edit_change(inv, plan, pip.id, {"publicIpName": "pip-edited"})
    journal = Journal(tmp_path)
    try:
        session = start_session(journal, gw, plan.changes())
        report = apply_changes(gw, journal, session, plan.changes(), allow_disruptive=True, allow_cost=True)
    finally:
        journal.close()
    assert not report.failed, [o.line() for o in report.failed]
    after = gw.inventory()
    made = after.get(next(c.resource_id for c in plan.changes() if c.id == bas.id))
    assert made is not None and made["name"] == "bas-edited" and made["sku"]["name"] == "Standard"
    assert after.get(pip.resource_id) is None and after.get(bas.resource_id) is None
    assert {f.status for f in make_plan(after, check_ids=["vm-6a"]).step("vm-6").findings} == {"pass"}


# ---- spoke article: the creates of spoke-1b, 2c, 4a, 5d and 5e -------------------------------------
def _spoke_plan(resources: list, step: str) -> tuple[Inventory, Plan]:
    inv = Inventory.from_resources(resources)
    return inv, make_plan(inv, step_ids=[step])


def _create(plan: Plan, step: str, check: str, contains: str = "") -> Change:
    return next(c for c in plan.step(step).changes
                if c.check == check and c.action == "create" and contains in c.resource_id)


def test_renaming_a_role_asg_moves_the_nics_that_join_it():
    from steps.test_spoke import estate

    inv, plan = _spoke_plan(estate(), "spoke-4")
    create = _create(plan, "spoke-4", "spoke-4a", "asg-web")
    nic = next(c for c in plan.step("spoke-4").changes if c.check == "spoke-4b" and create.id in c.depends_on)
    assert create.params == {"name": "asg-web"} and nic.resource_id.endswith("nic-vm-web-01")

    edit_change(inv, plan, create.id, {"name": "asg-frontend"})
    new_id = rid(SPOKE_RG, f"{N}/applicationSecurityGroups", "asg-frontend")
    edited = next(c for c in plan.step("spoke-4").changes if c.id == create.id)
    moved = next(c for c in plan.step("spoke-4").changes if c.id == nic.id)
    assert edited.resource_id == new_id and edited.title == "Create ASG asg-frontend for the web VMs"
    assert moved.depends_on == [create.id] and moved.title == "Put NIC nic-vm-web-01 in ASG asg-frontend"
    assert moved.body["properties"]["ipConfigurations"][0]["properties"]["applicationSecurityGroups"] == [{"id": new_id}]
    # the app tier's ASG and NIC are untouched
    app = _create(plan, "spoke-4", "spoke-4a", "asg-app")
    assert app.params == {"name": "asg-app"}
    # applied as ARM would, the NIC joins the renamed ASG and both checks pass for the web tier
    after = make_plan(apply_all(inv, plan.step("spoke-4").changes), check_ids=["spoke-4a", "spoke-4b"])
    assert {f.status for f in after.step("spoke-4").findings} == {"pass"}


def test_a_bad_asg_name_is_refused_with_its_rule():
    from steps.test_spoke import estate

    inv, plan = _spoke_plan(estate(), "spoke-4")
    create = _create(plan, "spoke-4", "spoke-4a", "asg-web")
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, create.id, {"name": "asg web"})
    assert "valid application security group name" in err.value.message and not plan.overrides


def test_the_waf_policy_name_and_mode_are_editable_and_the_gateway_follows():
    from steps.test_spoke import appgw

    inv, plan = _spoke_plan([appgw("Standard_v2")], "spoke-5")
    create = _create(plan, "spoke-5", "spoke-5e")
    assert create.params == {"name": "waf-agw-app", "mode": "Prevention"}

    edit_change(inv, plan, create.id, {"name": "waf-edge", "mode": "detection"})
    changes = [c for c in plan.step("spoke-5").changes if c.check == "spoke-5e"]
    edited = next(c for c in changes if c.id == create.id)
    gw = next(c for c in changes if create.id in c.depends_on)
    new_id = rid(SPOKE_RG, f"{N}/ApplicationGatewayWebApplicationFirewallPolicies", "waf-edge")
    assert edited.resource_id == new_id and edited.params == {"name": "waf-edge", "mode": "Detection"}
    assert edited.body["properties"]["policySettings"]["mode"] == "Detection"
    assert gw.body["properties"]["firewallPolicy"] == {"id": new_id} and "waf-edge" in gw.title
    for values, words in [({"mode": "Off"}, "one of Detection, Prevention"),
                          ({"name": "waf-edge."}, "valid WAF policy name")]:
        with pytest.raises(ParamError, match=words):
            edit_change(inv, plan, create.id, values)


def test_flow_log_retention_and_account_are_checked_before_anything_is_sent():
    from steps.test_spoke import spoke_vnet, storage_account, watcher, workspace

    inv, plan = _spoke_plan([spoke_vnet(peer=False), storage_account(), storage_account("stnorth", "northeurope"),
                             watcher(), workspace()], "spoke-5")
    create = _create(plan, "spoke-5", "spoke-5d")
    assert create.params["retentionDays"] == 90 and create.params["storageId"] == storage_account()["id"]

    edit_change(inv, plan, create.id, {"retentionDays": "30"})
    edited = _create(plan, "spoke-5", "spoke-5d")
    assert edited.id == create.id and edited.body["properties"]["retentionPolicy"] == {"enabled": True, "days": 30}
    with pytest.raises(ParamError, match="whole number from 1 to 365"):
        edit_change(inv, plan, create.id, {"retentionDays": "400"})
    # a flow log can only write to an account in its network's region
    with pytest.raises(ParamError, match="stnorth is in northeurope"):
        edit_change(inv, plan, create.id, {"storageId": storage_account("stnorth", "northeurope")["id"]})
    with pytest.raises(ParamError, match="the id of a Microsoft.Storage/storageAccounts"):
        edit_change(inv, plan, create.id, {"storageId": "stnorth"})
    assert plan.overrides == {create.id: {"retentionDays": 30}}


def test_the_activity_log_workspace_and_the_netops_role_name_are_editable():
    from steps.test_spoke import WL, estate, workspace

    other = workspace(WL, "log-security")
    inv, plan = _spoke_plan([*estate(), workspace()], "spoke-2")
    export = _create(plan, "spoke-2", "spoke-2c")
    edit_change(inv, plan, export.id, {"workspaceId": other["id"]})
    edited = _create(plan, "spoke-2", "spoke-2c")
    assert edited.id == export.id and edited.resource_id.endswith("/diagnosticSettings/activity-to-log-security")
    assert edited.body["properties"]["workspaceId"] == other["id"] and "log-security" in edited.title
    with pytest.raises(ParamError, match="OperationalInsights/workspaces"):
        edit_change(inv, plan, export.id, {"workspaceId": f"/subscriptions/{WL}/resourceGroups/rg"})

    inv, plan = _spoke_plan(estate(), "spoke-1")
    role = _create(plan, "spoke-1", "spoke-1b")
    assert role.params == {"roleName": "Network management (NetOps)"}
    edit_change(inv, plan, role.id, {"roleName": "Spoke network operators"})
    edited = _create(plan, "spoke-1", "spoke-1b")
    assert (edited.id, edited.resource_id) == (role.id, role.resource_id)
    assert edited.body["properties"]["roleName"] == "Spoke network operators"
    with pytest.raises(ParamError, match="roleName"):
        edit_change(inv, plan, role.id, {"roleName": "  "})


@pytest.mark.parametrize("value, ok", [("waf-agw-app", True), ("WAF_policy.1", True), ("w", True),
                                       ("-waf", False), ("waf.", False), ("waf policy", False), ("w" * 81, False)])
def test_the_waf_policy_name_rule(value, ok):
    rule = "name:ApplicationGatewayWebApplicationFirewallPolicies"
    if ok:
        assert coerce(rule, value) == value
    else:
        with pytest.raises(RuleError, match="valid WAF policy name"):
            coerce(rule, value)


def test_every_spoke_create_declares_the_parameters_it_carries():
    from steps.test_spoke import estate

    from ztwizard.sandbox.estates import reference

    for resources in (reference.build(), estate()):
        inv = Inventory.from_resources(resources)
        creates = [c for s in make_plan(inv).steps for c in s.changes
                   if c.check.startswith("spoke-") and c.action == "create"]
        assert creates
        assert all(CHECK_BY_ID[c.check].param(k) for c in creates for k in c.params), \
            [(c.check, sorted(c.params)) for c in creates]


# ---- hub article: the creates of hub-1c, hub-1h, hub-2a, hub-2d, hub-2e and hub-4d --------------

from steps import test_hub as hubt  # noqa: E402  (the hub article's estate builders)
from steps import test_spoke as spk  # noqa: E402

DDOS_T = "/providers/Microsoft.Network/ddosProtectionPlans/"


def hub_creates(plan: Plan, step: str, check: str) -> list[Change]:
    return [c for c in plan.step(step).changes if c.check == check and c.action == "create"]


def test_renaming_the_ddos_plan_moves_it_and_every_vnet_follows():
    inv = Inventory.from_resources(spk.estate())
    plan = make_plan(inv, step_ids=["hub-2"])
    (create,) = hub_creates(plan, "hub-2", "hub-2a")
    links = [c for c in plan.step("hub-2").changes if c.check == "hub-2b"]
    assert create.params == {"name": "ddos-westeurope", "resourceGroup": spk.HUB_RG.rsplit("/", 1)[-1]}
    assert len(links) == 2 and all(c.depends_on == [create.id] for c in links)

    edit_change(inv, plan, create.id, {"name": "ddos-tenant", "resourceGroup": "rg-shared"})
    (edited,) = hub_creates(plan, "hub-2", "hub-2a")
    new_links = [c for c in plan.step("hub-2").changes if c.check == "hub-2b"]
    want = f"/subscriptions/{spk.CN}/resourceGroups/rg-shared{DDOS_T}ddos-tenant"
    assert edited.id == create.id and edited.resource_id == want and "ddos-tenant" in edited.title
    # the VNets are linked to the plan the person named, not to the default one
    assert [c.after["properties"]["ddosProtectionPlan"] for c in new_links] == [{"id": want}] * 2
    assert all("ddos-tenant" in c.title and c.depends_on == [create.id] for c in new_links)
    assert [c.id for c in new_links] == [c.id for c in links]
    assert make_plan(inv, step_ids=["hub-2"], overrides=plan.overrides).to_dict() == plan.to_dict()
    fixed = apply_all(inv, [edited, *new_links])
    after = make_plan(fixed, check_ids=["hub-2a", "hub-2b"]).step("hub-2")
    assert {f.status for f in after.findings} == {"pass"} and fixed.get(create.resource_id) is None


def test_renaming_the_premium_policy_and_the_ddos_alert_rebuilds_them():
    group = {"id": f"/subscriptions/{spk.CN}/resourceGroups/rg-mgmt/providers/Microsoft.Insights/actionGroups/ag-ops",
             "location": "global", "properties": {}}
    other = {**group, "id": group["id"].replace("ag-ops", "ag-soc")}
    inv = Inventory.from_resources([hub_vnet(), firewall(policy=hubt.POLICY), hubt.policy(), hubt.pip(), group, other])
    plan = make_plan(inv, step_ids=["hub-1", "hub-2"])
    (pol,) = hub_creates(plan, "hub-1", "hub-1c")
    (alert,) = hub_creates(plan, "hub-2", "hub-2e")
    assert pol.params == {"name": "fwp-hub-premium"}
    assert alert.params == {"name": "alert-ddos-pip-fw", "actionGroupId": group["id"]}

    edit_change(inv, plan, pol.id, {"name": "fwp-hub-p"})
    edit_change(inv, plan, alert.id, {"name": "ddos-attack-pip-fw", "actionGroupId": other["id"]})
    (pol2,) = hub_creates(plan, "hub-1", "hub-1c")
    (alert2,) = hub_creates(plan, "hub-2", "hub-2e")
    assert (pol2.id, alert2.id) == (pol.id, alert.id)
    assert pol2.resource_id.endswith("/firewallPolicies/fwp-hub-p") and pol2.title.startswith("Create Premium policy fwp-hub-p")
    assert pol2.body["properties"]["sku"] == {"tier": "Premium"}
    assert alert2.resource_id.endswith("/metricAlerts/ddos-attack-pip-fw")
    assert alert2.body["properties"]["actions"] == [{"actionGroupId": other["id"]}]
    assert alert2.body["properties"]["scopes"] == [hubt.PIP_FW]


def test_choosing_another_workspace_for_firewall_logs_rebuilds_the_setting():
    ws, central = spk.workspace(), spk.workspace(name="log-central")
    inv = Inventory.from_resources([hub_vnet(), firewall(), ws, central])
    plan = make_plan(inv, step_ids=["hub-1"])
    (diag,) = hub_creates(plan, "hub-1", "hub-1h")
    default = diag.params["workspaceId"]
    chosen = next(w for w in (ws, central) if w["id"] != default)
    assert default in (ws["id"], central["id"]) and diag.resource_id.endswith(f"/to-{default.rsplit('/', 1)[-1]}")
    edit_change(inv, plan, diag.id, {"workspaceId": chosen["id"]})
    (diag2,) = hub_creates(plan, "hub-1", "hub-1h")
    assert diag2.id == diag.id and diag2.resource_id.endswith(f"/diagnosticSettings/to-{chosen['id'].rsplit('/', 1)[-1]}")
    assert diag2.body["properties"]["workspaceId"] == chosen["id"] and chosen["id"].rsplit("/", 1)[-1] in diag2.title
    fixed = apply_all(inv, [diag2])
    assert {f.status for f in make_plan(fixed, check_ids=["hub-1h"]).step("hub-1").findings} == {"pass"}


def test_renaming_the_network_watcher_keeps_the_id_spoke_flow_logs_wait_for():
    inv = Inventory.from_resources([spk.spoke_vnet(peer=False), spk.storage_account()])
    plan = make_plan(inv, step_ids=["hub-4", "spoke-5"])
    (watcher,) = hub_creates(plan, "hub-4", "hub-4d")
    flow = next(c for c in plan.step("spoke-5").changes if c.check == "spoke-5d")
    assert flow.depends_on == [watcher.id]  # across articles, by what the watcher is for
    edit_change(inv, plan, watcher.id, {"name": "nw-weu", "resourceGroup": "rg-monitor"})
    (edited,) = hub_creates(plan, "hub-4", "hub-4d")
    assert edited.id == watcher.id
    assert edited.resource_id == f"/subscriptions/{spk.WL}/resourceGroups/rg-monitor/providers/" \
                                 f"Microsoft.Network/networkWatchers/nw-weu"
    assert edited.params == {"name": "nw-weu", "resourceGroup": "rg-monitor"}


@pytest.mark.parametrize("check, field, value, words", [
    ("hub-2a", "name", "ddos plan!", ["name = 'ddos plan!'", "valid DDoS protection plan name", "1-80"]),
    ("hub-2a", "resourceGroup", "rg-shared.", ["valid resource group name", "not ending in '.'"]),
    ("hub-2e", "actionGroupId", "ag-ops", ["the id of a Microsoft.Insights/actionGroups"]),
    ("hub-2e", "name", "alert/ddos", ["valid metric alert name"]),
    ("hub-1c", "name", "fwp-", ["valid firewall policy name"]),
    ("hub-2d", "workspaceId", f"/subscriptions/{spk.CN}/resourceGroups/rg-mgmt/providers/Microsoft.Storage/"
                              f"storageAccounts/st", ["the id of a Microsoft.OperationalInsights/workspaces"]),
    ("hub-4d", "name", "n" * 81, ["valid Network Watcher name"]),
])
def test_an_invalid_hub_edit_is_refused_with_its_rule(check, field, value, words):
    group = {"id": f"/subscriptions/{spk.CN}/resourceGroups/rg-mgmt/providers/Microsoft.Insights/actionGroups/ag-ops",
             "location": "global", "properties": {}}
    inv = Inventory.from_resources([*spk.estate(), firewall(policy=hubt.POLICY), hubt.policy(), hubt.pip(), group,
                                    spk.workspace()])
    plan = make_plan(inv, step_ids=["hub-1", "hub-2", "hub-4"])
    before = json.dumps(plan.to_dict(), sort_keys=True)
    change = next(c for s in plan.steps for c in s.changes if c.check == check and c.action == "create")
    with pytest.raises(ParamError) as err:
        edit_change(inv, plan, change.id, {field: value})
    for w in words:
        assert w in err.value.message, err.value.message
    assert err.value.exit_code == 2 and err.value.hint
    assert json.dumps(plan.to_dict(), sort_keys=True) == before  # nothing half-applied


def test_hub_name_rules():
    assert coerce("name:resourceGroups", "rg-(net).weu_1") == "rg-(net).weu_1"
    assert coerce("name:ddosProtectionPlans", "ddos-westeurope") == "ddos-westeurope"
    assert coerce("name:networkWatchers", "NetworkWatcher_westeurope") == "NetworkWatcher_westeurope"
    for rule, bad in [("name:resourceGroups", "rg."), ("name:resourceGroups", "g" * 91),
                      ("name:resourceGroups", "rg net"), ("name:ddosProtectionPlans", "-ddos"),
                      ("name:networkWatchers", "")]:
        with pytest.raises(RuleError):
            coerce(rule, bad)
