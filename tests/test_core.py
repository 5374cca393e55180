"""Resource ids, inventory normalisation and change ordering: the vocabulary every check relies on."""

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path, nested
from ztwizard.engine import order_changes
from ztwizard.inventory import Inventory
from ztwizard.model import Change, worst

SUB = "11111111-1111-1111-1111-111111111111"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-net"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-spoke"


def test_parse_resource_group_scoped_child():
    p = rid.parse(f"{VNET}/subnets/snet-web")
    assert p.type == "Microsoft.Network/virtualNetworks/subnets"
    assert p.name == "snet-web"
    assert p.parent == VNET
    assert p.subscription == SUB and p.resource_group == "rg-net"


def test_parse_subscription_scope_and_extension_resources():
    pricing = rid.parse(f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/VirtualMachines")
    assert (pricing.type, pricing.name, pricing.parent) == ("Microsoft.Security/pricings", "VirtualMachines",
                                                            f"/subscriptions/{SUB}")
    acct = f"{RG}/providers/Microsoft.Storage/storageAccounts/st1"
    ext = rid.parse(f"{acct}/providers/Microsoft.Security/defenderForStorageSettings/current")
    assert ext.type == "Microsoft.Security/defenderForStorageSettings"
    assert ext.parent == acct
    assert rid.parse(RG).type == "Microsoft.Resources/resourceGroups"


def test_guid_and_case_insensitive_ids():
    assert rid.is_guid(SUB) and not rid.is_guid("my-subscription")
    assert rid.same(VNET.upper(), VNET.lower())


def test_inventory_lifts_inline_children_and_restores_type_casing():
    inv = Inventory.from_resources([{
        "id": VNET, "type": "microsoft.network/virtualnetworks", "subscriptionId": SUB,
        "properties": {"subnets": [{"name": "snet-web", "properties": {"addressPrefix": "10.1.1.0/24"}}]},
    }])
    subnets = inv.of_type("Microsoft.Network/virtualNetworks/subnets")
    assert [s["name"] for s in subnets] == ["snet-web"]
    assert subnets[0]["id"] == f"{VNET}/subnets/snet-web"
    assert inv.get(VNET.upper())["type"] == "Microsoft.Network/virtualNetworks"
    assert inv.subscriptions == [SUB]
    assert inv.resource_groups == [RG]


def test_inventory_rebuilds_inline_list_from_separate_children():
    inv = Inventory.from_resources([
        {"id": VNET, "type": "Microsoft.Network/virtualNetworks", "properties": {"addressSpace": {}}},
        {"id": f"{VNET}/subnets/a", "properties": {"addressPrefix": "10.1.0.0/24"}},
    ])
    assert [s["name"] for s in inv.get(VNET)["properties"]["subnets"]] == ["a"]
    assert inv.parent(f"{VNET}/subnets/a")["id"] == VNET


def test_paths_are_case_insensitive_and_nest():
    res = {"properties": {"minimumTlsVersion": "TLS1_0"}}
    assert get_path(res, "properties.minimumtlsversion") == "TLS1_0"
    assert get_path(res, "properties.missing.deeper") is None
    assert nested({"properties.a.b": 1, "properties.c": 2}) == {"properties": {"a": {"b": 1}, "c": 2}}


def test_worst_status_orders_error_fail_manual_pass_na():
    assert worst(["pass", "manual", "fail"]) == "fail"
    assert worst(["pass", "error", "fail"]) == "error"
    assert worst([]) == "not_applicable"
    assert worst(["not_applicable", "pass"]) == "pass"


def test_changes_ordered_prerequisites_first_and_ids_stable():
    nsg = Change("spoke-3a", f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg", "create", "PUT",
                 {}, {}, {})
    assoc = Change("spoke-3a", f"{VNET}/subnets/a", "update", "PUT", {}, {}, {}, depends_on=[nsg.id])
    other = Change("hub-2b", VNET, "update", "PUT", {}, {}, {})
    assert [c.id for c in order_changes([assoc, other, nsg])] == [nsg.id, assoc.id, other.id]
    again = Change("spoke-3a", f"{VNET}/subnets/a".upper(), "update", "PUT", {}, {}, {})
    assert again.id == assoc.id
