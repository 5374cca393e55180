"""VM article: every check passes a compliant estate, fails a non-compliant one, and the change it
proposes, once applied as ARM would, turns the finding into a pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ztwizard.inventory import Inventory
from ztwizard.model import change_id
from ztwizard.resource_id import parse
from ztwizard.steps import CHECK_BY_ID, common
from ztwizard.steps import vm as vm_article

from .conftest import RG, SUB, apply_all, sandbox_round_trip, statuses, verdicts

NET_RG = f"/subscriptions/{SUB}/resourceGroups/rg-network"
HUB_RG = f"/subscriptions/{SUB}/resourceGroups/rg-hub"
SPOKE = f"{NET_RG}/providers/Microsoft.Network/virtualNetworks/vnet-spoke-weu"
HUB = f"{HUB_RG}/providers/Microsoft.Network/virtualNetworks/vnet-hub-weu"
SUBNET = f"{SPOKE}/subnets/snet-web"
NSG = f"{NET_RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-web"
VM_ID = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-01"
NIC_ID = f"{RG}/providers/Microsoft.Network/networkInterfaces/nic-vm-web-01"
DISK_ID = f"{RG}/providers/Microsoft.Compute/disks/vm-web-01-osdisk"


def make_vm(name: str = "vm-web-01", os: str = "Windows", *, security: str = "TrustedLaunch",
            secure_boot: bool = True, vtpm: bool = True, **props: Any) -> dict[str, Any]:
    vm_id = f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"
    cfg = "windowsConfiguration" if os == "Windows" else "linuxConfiguration"
    patch = {"patchMode": "AutomaticByPlatform", "assessmentMode": "AutomaticByPlatform"}
    p: dict[str, Any] = {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"osDisk": {"osType": os, "name": f"{name}-osdisk",
                                      "managedDisk": {"id": f"{RG}/providers/Microsoft.Compute/disks/{name}-osdisk"}}},
        "osProfile": {"computerName": name, "adminUsername": "azureuser",
                      cfg: {"provisionVMAgent": True, "patchSettings": patch}},
        "networkProfile": {"networkInterfaces": [{"id": f"{RG}/providers/Microsoft.Network/networkInterfaces/nic-{name}"}]},
        "securityProfile": {"securityType": security, "encryptionAtHost": True,
                            "uefiSettings": {"secureBootEnabled": secure_boot, "vTpmEnabled": vtpm}},
    }
    if security == "Standard":
        p["securityProfile"] = {"encryptionAtHost": True}
    p.update(props)
    return {"id": vm_id, "name": name, "type": "Microsoft.Compute/virtualMachines", "location": "westeurope",
            "etag": '"1"', "identity": {"type": "SystemAssigned", "principalId": "x", "tenantId": "t"},
            "properties": p}


def disk(name: str = "vm-web-01-osdisk", gen: str | None = "V2", **props: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"diskSizeGB": 128, "osType": "Windows",
                         "encryption": {"type": "EncryptionAtRestWithPlatformAndCustomerKeys",
                                        "diskEncryptionSetId": DES_ID},
                         "networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled"}
    if gen:
        p["hyperVGeneration"] = gen
    p.update(props)
    return {"id": f"{RG}/providers/Microsoft.Compute/disks/{name}", "name": name,
            "type": "Microsoft.Compute/disks", "location": "westeurope", "properties": p}


DES_ID = f"{RG}/providers/Microsoft.Compute/diskEncryptionSets/des-weu"


def des(enc: str = "EncryptionAtRestWithPlatformAndCustomerKeys") -> dict[str, Any]:
    return {"id": DES_ID, "name": "des-weu", "type": "Microsoft.Compute/diskEncryptionSets",
            "location": "westeurope", "identity": {"type": "SystemAssigned"},
            "properties": {"encryptionType": enc, "activeKey": {"keyUrl": "https://kv.vault.azure.net/keys/k/1"}}}


def nic(name: str = "vm-web-01", subnet_id: str = SUBNET, public_ip: bool = False,
        nsg_id: str | None = None) -> dict[str, Any]:
    ipc: dict[str, Any] = {"privateIPAddress": "10.1.1.4", "subnet": {"id": subnet_id}}
    if public_ip:
        ipc["publicIPAddress"] = {"id": f"{RG}/providers/Microsoft.Network/publicIPAddresses/pip-{name}"}
    p: dict[str, Any] = {"ipConfigurations": [{"name": "ipconfig1", "properties": ipc}],
                         "virtualMachine": {"id": f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"}}
    if nsg_id:
        p["networkSecurityGroup"] = {"id": nsg_id}
    return {"id": f"{RG}/providers/Microsoft.Network/networkInterfaces/nic-{name}", "name": f"nic-{name}",
            "type": "Microsoft.Network/networkInterfaces", "location": "westeurope", "etag": 'W/"n"',
            "properties": p}


def rule(name: str, *, port: str | None = "3389", ports: list[str] | None = None, source: str | None = "*",
         sources: list[str] | None = None, access: str = "Allow", direction: str = "Inbound",
         protocol: str = "Tcp", priority: int = 100) -> dict[str, Any]:
    p: dict[str, Any] = {"protocol": protocol, "sourcePortRange": "*", "destinationAddressPrefix": "*",
                         "access": access, "direction": direction, "priority": priority}
    if port is not None:
        p["destinationPortRange"] = port
    if ports is not None:
        p["destinationPortRanges"] = ports
    if source is not None:
        p["sourceAddressPrefix"] = source
    if sources is not None:
        p["sourceAddressPrefixes"] = sources
    return {"name": name, "properties": p}


def nsg(rules: list[dict[str, Any]], nsg_id: str = NSG, as_entries: bool = False) -> list[dict[str, Any]]:
    """An NSG with its rules inline (as ARM GET returns) or as entries of their own (as Resource Graph)."""
    body = {"id": nsg_id, "name": nsg_id.rsplit("/", 1)[-1], "type": "Microsoft.Network/networkSecurityGroups",
            "location": "westeurope", "etag": 'W/"g"',
            "properties": {"securityRules": [] if as_entries else copy.deepcopy(rules),
                           "defaultSecurityRules": [{"name": "AllowVnetInBound", "properties": {
                               "priority": 65000, "access": "Allow", "direction": "Inbound",
                               "sourceAddressPrefix": "VirtualNetwork", "destinationPortRange": "*"}}]}}
    out = [body]
    if as_entries:
        for r in rules:
            out.append({**copy.deepcopy(r), "id": f"{nsg_id}/securityRules/{r['name']}",
                        "type": "microsoft.network/networksecuritygroups/securityrules"})
    return out


def network(subnet_nsg: str | None = NSG, bastion_subnet: bool = True, bastion: bool = False) -> list[dict[str, Any]]:
    web: dict[str, Any] = {"name": "snet-web", "properties": {"addressPrefix": "10.1.1.0/24"}}
    if subnet_nsg:
        web["properties"]["networkSecurityGroup"] = {"id": subnet_nsg}
    spoke = {"id": SPOKE, "name": "vnet-spoke-weu", "type": "Microsoft.Network/virtualNetworks",
             "location": "westeurope", "properties": {
                 "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "subnets": [web],
                 "virtualNetworkPeerings": [{"name": "to-hub", "properties": {
                     "remoteVirtualNetwork": {"id": HUB}, "peeringState": "Connected"}}]}}
    hub_subnets = [{"name": "AzureFirewallSubnet", "properties": {"addressPrefix": "10.0.0.0/26"}}]
    if bastion_subnet:
        hub_subnets.append({"name": "AzureBastionSubnet", "properties": {"addressPrefix": "10.0.1.0/26"}})
    hub = {"id": HUB, "name": "vnet-hub-weu", "type": "Microsoft.Network/virtualNetworks", "location": "westeurope",
           "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": hub_subnets,
                          "virtualNetworkPeerings": [{"name": "to-spoke", "properties": {
                              "remoteVirtualNetwork": {"id": SPOKE}, "peeringState": "Connected"}}]}}
    out = [spoke, hub]
    if bastion:
        out.append({"id": f"{HUB_RG}/providers/Microsoft.Network/bastionHosts/bas-hub", "name": "bas-hub",
                    "type": "Microsoft.Network/bastionHosts", "location": "westeurope", "sku": {"name": "Basic"},
                    "properties": {"ipConfigurations": [{"name": "c", "properties": {
                        "subnet": {"id": f"{HUB}/subnets/AzureBastionSubnet"}}}]}})
    return out


def ext(vm_id: str, name: str, publisher: str, ext_type: str, **props: Any) -> dict[str, Any]:
    return {"id": f"{vm_id}/extensions/{name}", "name": name, "type": "Microsoft.Compute/virtualMachines/extensions",
            "location": "westeurope",
            "properties": {"publisher": publisher, "type": ext_type, "typeHandlerVersion": "1.0",
                           "autoUpgradeMinorVersion": True, "provisioningState": "Succeeded", **props}}


def inv_of(*resources: dict[str, Any] | list[dict[str, Any]]) -> Inventory:
    flat: list[dict[str, Any]] = []
    for r in resources:
        flat.extend(r if isinstance(r, list) else [r])
    return Inventory.from_resources(flat)


def run(check_id: str, inv: Inventory):
    return CHECK_BY_ID[check_id].run(inv)


def open_ports(r: dict[str, Any]) -> list[int]:
    """The management ports one rule, alone in the NIC's NSG, opens to the internet."""
    inv = inv_of(make_vm(), nic(nsg_id=NSG), nsg([r]))
    return sorted({p for _r, ps in vm_article.open_rules(make_vm(), inv) for p in ps})


def assert_fix_passes(check_id: str, inv: Inventory, resource_id: str | None = None) -> Inventory:
    result = run(check_id, inv)
    assert "fail" in statuses(result, resource_id), result.findings
    assert result.changes
    fixed = apply_all(inv, result.changes)
    after = run(check_id, fixed)
    assert statuses(after, resource_id) and set(statuses(after, resource_id)) == {"pass"}, after.findings
    return fixed


def test_article_has_every_check_of_the_spec():
    ids = [c.id for s in vm_article.STEPS for c in s.checks]
    assert ids == ["vm-1a", "vm-2a", "vm-2b", "vm-2c", "vm-3a", "vm-3b", "vm-3c", "vm-3d", "vm-4a", "vm-4b",
                   "vm-4c", "vm-4d", "vm-5a", "vm-6a", "vm-6b", "vm-6c", "vm-6d", "vm-6e", "vm-7a", "vm-7b",
                   "vm-7c", "vm-7d", "vm-8a", "vm-8b", "vm-8c", "vm-8d"]
    assert [s.number for s in vm_article.STEPS] == list(range(1, 9))
    for s in vm_article.STEPS:
        assert s.article == "vm" and s.why and s.id == f"vm-{s.number}"
        for c in s.checks:
            assert c.title and c.risk and c.mcsb
    disruptive = {c.id for s in vm_article.STEPS for c in s.checks if c.disruptive}
    assert {"vm-3a", "vm-3b", "vm-3c", "vm-4b", "vm-4c", "vm-6b"} <= disruptive
    billable = {c.id for s in vm_article.STEPS for c in s.checks if c.billable}
    assert {"vm-6a", "vm-8a", "vm-8b"} <= billable


def test_no_vms_is_not_applicable():
    inv = Inventory.from_resources([], subscriptions=[SUB])
    for cid in ("vm-1a", "vm-2c", "vm-3a", "vm-3d", "vm-5a", "vm-6a", "vm-6c", "vm-7a", "vm-7b", "vm-8c", "vm-8d"):
        assert statuses(run(cid, inv)) == ["not_applicable"], cid


# ---- "open to the internet" ---------------------------------------------------------------------

@pytest.mark.parametrize("r,opened", [
    (rule("a", port="3389"), [3389]),
    (rule("b", port="20-25"), [22]),
    (rule("c", port=None, ports=["80", "3380-3390", "22"]), [22, 3389]),
    (rule("d", port="*"), [22, 3389]),
    (rule("e", port="22", source="Internet"), [22]),
    (rule("f", port="22", source="0.0.0.0/0"), [22]),
    (rule("g", port="22", source=None, sources=["10.0.0.0/8", "0.0.0.0/0"]), [22]),
    (rule("h", port="22", protocol="*"), [22]),
    (rule("i", port="22", access="Deny"), []),
    (rule("j", port="22", direction="Outbound"), []),
    (rule("k", port="22", source="203.0.113.0/24"), []),
    (rule("l", port="22", source="AzureLoadBalancer"), []),
    (rule("m", port="443"), []),
    (rule("n", port="22", protocol="Icmp"), []),
])
def test_open_to_the_internet(r, opened):
    assert open_ports(r) == opened


# ---- step 1 -------------------------------------------------------------------------------------

def test_isolation():
    assert statuses(run("vm-1a", inv_of(make_vm()))) == ["pass"]
    acct = {"id": f"{RG}/providers/Microsoft.Storage/storageAccounts/stdiag", "name": "stdiag",
            "type": "microsoft.storage/storageaccounts", "properties": {}}
    res = run("vm-1a", inv_of(make_vm(), acct))
    assert verdicts(res) == ["fail/manual"] and res.findings[0].resource_id == RG
    assert "storage account stdiag" in res.findings[0].message and "move" in res.findings[0].message.lower()


# ---- step 2 -------------------------------------------------------------------------------------

def assignment(scope: str, role: str, ptype: str, n: int) -> dict[str, Any]:
    guid = f"10000000-0000-0000-0000-{n:012d}"
    return {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}", "name": guid,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {"principalId": f"u{n}", "principalType": ptype,
                           "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"}}


def test_vm_rbac():
    login = "fb879df8-f326-4884-b1cf-06f3ad86be52"
    ok = inv_of(make_vm(), assignment(VM_ID, login, "Group", 1), assignment(RG, vm_article.OWNER, "Group", 2))
    assert statuses(run("vm-2a", ok)) == ["pass"]
    res = run("vm-2a", inv_of(make_vm(), assignment(RG, vm_article.CONTRIBUTOR, "User", 3)))
    assert verdicts(res) == ["fail/manual"] and "Virtual Machine User Login" in res.findings[0].message
    inv = inv_of(make_vm())
    inv.unreadable["microsoft.authorization/roleassignments"] = "403 AuthorizationFailed"
    assert statuses(run("vm-2a", inv)) == ["error"]
    assert statuses(run("vm-2c", inv)) == ["pass"]  # other checks still work


def role_definition(actions: list[str], n: int = 1) -> dict[str, Any]:
    guid = f"20000000-0000-0000-0000-{n:012d}"
    return {"id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}", "name": guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {"roleName": f"r{n}", "type": "CustomRole", "assignableScopes": [f"/subscriptions/{SUB}"],
                           "permissions": [{"actions": actions, "notActions": []}]}}


def test_join_role():
    ok = inv_of(make_vm(), role_definition([vm_article.JOIN_ACTION, "Microsoft.Network/virtualNetworks/subnets/read"]))
    assert statuses(run("vm-2b", ok)) == ["pass"]
    broad = inv_of(make_vm(), role_definition([vm_article.JOIN_ACTION, "Microsoft.Network/*"]))
    res = run("vm-2b", broad)
    assert statuses(res) == ["fail"]
    (change,) = res.changes
    assert change.action == "create" and change.resource_id.startswith(
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/")
    assert change.body["properties"]["assignableScopes"] == [f"/subscriptions/{SUB}"]
    assert_fix_passes("vm-2b", broad)
    assert run("vm-2b", broad).changes[0].id == change.id  # stable across runs


def test_system_identity():
    assert statuses(run("vm-2c", inv_of(make_vm()))) == ["pass"]
    v = make_vm()
    v["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {
        "/subscriptions/x/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1":
            {"principalId": "p", "clientId": "c"}}}
    inv = inv_of(v)
    res = run("vm-2c", inv)
    assert statuses(res) == ["fail"]
    ident = res.changes[0].body["identity"]
    assert ident["type"] == "SystemAssigned, UserAssigned"
    assert list(ident["userAssignedIdentities"].values()) == [{}]  # kept, read-only ids not sent
    assert res.changes[0].method == "PATCH" and not res.changes[0].disruptive
    assert_fix_passes("vm-2c", inv)
    bare = make_vm()
    del bare["identity"]
    assert_fix_passes("vm-2c", inv_of(bare))


# ---- step 3 -------------------------------------------------------------------------------------

def test_trusted_launch_gen2_fails_with_fix_gen1_manual():
    assert statuses(run("vm-3a", inv_of(make_vm(), disk()))) == ["pass"]
    inv = inv_of(make_vm(security="Standard"), disk(gen="V2"))
    res = run("vm-3a", inv)
    assert statuses(res) == ["fail"]
    c = res.changes[0]
    assert c.disruptive and c.method == "PATCH" and "deallocat" in c.title
    assert c.body["properties"]["securityProfile"]["securityType"] == "TrustedLaunch"
    fixed = assert_fix_passes("vm-3a", inv)
    assert fixed.get(VM_ID)["properties"]["securityProfile"]["encryptionAtHost"] is True  # untouched
    # absent hyperVGeneration on the disk means Gen1: an upgrade instruction, no fix
    res = run("vm-3a", inv_of(make_vm(security="Standard"), disk(gen=None)))
    assert verdicts(res) == ["fail/manual"] and not res.changes and "Gen2" in res.findings[0].message
    # disk not in the inventory: the instance view decides, else an instruction to confirm
    v = make_vm(security="Standard", instanceView={"hyperVGeneration": "V2"})
    assert statuses(run("vm-3a", inv_of(v))) == ["fail"]
    assert verdicts(run("vm-3a", inv_of(make_vm(security="Standard")))) == ["fail/manual"]
    graph = make_vm(security="Standard", extended={"instanceView": {"hyperVGeneration": "V1"}})
    assert "Generation 1" in run("vm-3a", inv_of(graph)).findings[0].message


@pytest.mark.parametrize("check_id,leaf", [("vm-3b", "secureBootEnabled"), ("vm-3c", "vTpmEnabled")])
def test_secure_boot_and_vtpm(check_id, leaf):
    assert statuses(run(check_id, inv_of(make_vm(), disk()))) == ["pass"]
    kwargs = {"secure_boot": False} if leaf == "secureBootEnabled" else {"vtpm": False}
    inv = inv_of(make_vm(**kwargs), disk())
    res = run(check_id, inv)
    assert statuses(res) == ["fail"] and res.changes[0].depends_on == []
    assert res.changes[0].body == {"properties": {"securityProfile": {"uefiSettings": {leaf: True}}}}
    assert res.changes[0].disruptive
    assert_fix_passes(check_id, inv)
    # a Standard Gen2 VM: the switch waits for Trusted Launch (vm-3a)
    inv = inv_of(make_vm(security="Standard"), disk())
    res = run(check_id, inv)
    assert res.changes[0].depends_on == [change_id("vm-3a", VM_ID, "PATCH")]
    fixed = apply_all(inv, [*run("vm-3a", inv).changes, *res.changes])
    assert statuses(run(check_id, fixed)) == ["pass"]
    assert verdicts(run(check_id, inv_of(make_vm(security="Standard"), disk(gen="V1")))) == ["fail/manual"]


def test_guest_attestation():
    v = make_vm()
    ok = ext(VM_ID, "GuestAttestation", "Microsoft.Azure.Security.WindowsAttestation", "GuestAttestation")
    assert statuses(run("vm-3d", inv_of(v, disk(), ok))) == ["pass"]
    inv = inv_of(v, disk())
    res = run("vm-3d", inv)
    assert statuses(res) == ["fail"]
    (c,) = res.changes
    assert c.action == "create" and c.resource_id == f"{VM_ID}/extensions/GuestAttestation"
    assert c.body["properties"]["publisher"] == "Microsoft.Azure.Security.WindowsAttestation"
    assert c.body["properties"]["autoUpgradeMinorVersion"] is True
    assert_fix_passes("vm-3d", inv)
    # Linux uses the Linux publisher; a Standard Gen2 VM waits for Trusted Launch
    lin = make_vm("vm-app-01", "Linux", security="Standard")
    res = run("vm-3d", inv_of(lin, disk("vm-app-01-osdisk")))
    assert res.changes[0].body["properties"]["publisher"] == "Microsoft.Azure.Security.LinuxAttestation"
    assert res.changes[0].depends_on == [change_id("vm-3a", lin["id"], "PATCH")]
    # extension as an inline child of the VM (ARM GET with $expand) counts too
    inline = make_vm()
    inline["resources"] = [ok]
    assert statuses(run("vm-3d", inv_of(inline, disk()))) == ["pass"]
    failed = ext(VM_ID, "GuestAttestation", "Microsoft.Azure.Security.WindowsAttestation", "GuestAttestation",
                 provisioningState="Failed")
    res = run("vm-3d", inv_of(v, disk(), failed))
    assert verdicts(res) == ["fail/manual"] and "reinstall" in res.findings[0].message


# ---- step 4 -------------------------------------------------------------------------------------

def test_disk_encryption_set():
    assert statuses(run("vm-4a", inv_of(make_vm(), des()))) == ["pass"]
    res = run("vm-4a", inv_of(make_vm(), des("EncryptionAtRestWithCustomerKey")))
    # the set that does not double-encrypt (a person changes it), and the region that lacks one
    assert verdicts(res) == ["fail/manual", "fail/create"]
    (wanted,) = res.changes
    assert wanted.action == "create" and wanted.params["keyVaultId"] == "" and wanted.disruptive
    assert "deallocated" in wanted.risk
    res = run("vm-4a", inv_of(make_vm()))
    assert verdicts(res) == ["fail/create"] and "Key Vault key" in res.findings[0].message


def test_disk_customer_key():
    assert statuses(run("vm-4b", inv_of(disk(), des()))) == ["pass"]
    plain = disk(encryption={"type": "EncryptionAtRestWithPlatformKey"})
    inv = inv_of(plain, des())
    res = run("vm-4b", inv)
    assert statuses(res) == ["fail"]
    assert res.changes[0].body == {"properties": {"encryption": {
        "type": "EncryptionAtRestWithPlatformAndCustomerKeys", "diskEncryptionSetId": DES_ID}}}
    assert res.changes[0].disruptive
    assert_fix_passes("vm-4b", inv)
    assert verdicts(run("vm-4b", inv_of(plain))) == ["fail/manual"]  # no set to move to yet


def test_encryption_at_host():
    assert statuses(run("vm-4c", inv_of(make_vm()))) == ["pass"]
    v = make_vm()
    del v["properties"]["securityProfile"]["encryptionAtHost"]
    inv = inv_of(v)
    res = run("vm-4c", inv)
    assert statuses(res) == ["fail"] and res.changes[0].disruptive and "vm-web-01" in res.changes[0].title
    fixed = assert_fix_passes("vm-4c", inv)
    assert fixed.get(VM_ID)["properties"]["securityProfile"]["uefiSettings"]["vTpmEnabled"] is True


def test_disk_network_access():
    assert statuses(run("vm-4d", inv_of(disk()))) == ["pass"]
    assert statuses(run("vm-4d", inv_of(disk(networkAccessPolicy="AllowPrivate")))) == ["pass"]
    d = disk()
    del d["properties"]["networkAccessPolicy"], d["properties"]["publicNetworkAccess"]
    inv = inv_of(d)
    res = run("vm-4d", inv)
    assert statuses(res) == ["fail"]
    assert res.findings[0].actual == {"networkAccessPolicy": "AllowAll", "publicNetworkAccess": "Enabled"}
    assert_fix_passes("vm-4d", inv)


# ---- step 5 -------------------------------------------------------------------------------------

def test_gallery_applications():
    app = f"/subscriptions/{SUB}/resourceGroups/rg-gal/providers/Microsoft.Compute/galleries/gal/applications/agent/versions/1.0.0"
    v = make_vm(applicationProfile={"galleryApplications": [{"packageReferenceId": app}]})
    assert statuses(run("vm-5a", inv_of(v))) == ["pass"]
    res = run("vm-5a", inv_of(make_vm()))
    assert verdicts(res) == ["fail/manual"] and "Compute Gallery" in res.findings[0].message
    foreign = app.replace(SUB, "99999999-9999-9999-9999-999999999999")
    v = make_vm(applicationProfile={"galleryApplications": [{"packageReferenceId": foreign}]})
    assert verdicts(run("vm-5a", inv_of(v))) == ["manual/manual"]  # only a person knows the publisher


# ---- step 6 -------------------------------------------------------------------------------------

def test_bastion_reachable_through_peering():
    inv = inv_of(make_vm(), nic(), network(bastion=True))
    assert statuses(run("vm-6a", inv)) == ["pass"]


def test_bastion_proposed_in_the_hub_and_fixes():
    inv = inv_of(make_vm(), nic(), network())
    res = run("vm-6a", inv)
    assert statuses(res) == ["fail"]
    pip, bas = res.changes
    assert pip.resource_id == f"{HUB_RG}/providers/Microsoft.Network/publicIPAddresses/pip-bas-hub-weu"
    assert bas.resource_id == f"{HUB_RG}/providers/Microsoft.Network/bastionHosts/bas-hub-weu"
    assert bas.depends_on == [pip.id] and bas.billable and pip.billable
    ipc = bas.body["properties"]["ipConfigurations"][0]["properties"]
    assert ipc == {"subnet": {"id": f"{HUB}/subnets/AzureBastionSubnet"}, "publicIPAddress": {"id": pip.resource_id}}
    assert_fix_passes("vm-6a", inv)
    res = run("vm-6a", inv_of(make_vm(), nic(), network(bastion_subnet=False)))
    assert verdicts(res) == ["fail/manual"] and "AzureBastionSubnet" in res.findings[0].message
    assert "vnet-hub-weu" in res.findings[0].message


def test_public_ip_detached_after_bastion():
    inv = inv_of(make_vm(), nic(public_ip=True), network())
    res = run("vm-6b", inv)
    assert statuses(res) == ["fail"] and res.findings[0].resource_id == NIC_ID
    (c,) = res.changes
    assert c.method == "PUT" and c.disruptive
    assert "publicIPAddress" not in c.body["properties"]["ipConfigurations"][0]["properties"]
    assert c.body["properties"]["ipConfigurations"][0]["properties"]["subnet"] == {"id": SUBNET}
    assert c.depends_on == [ch.id for ch in run("vm-6a", inv).changes if "bastionHosts" in ch.resource_id]
    assert_fix_passes("vm-6b", inv)
    assert statuses(run("vm-6b", inv_of(nic()))) == ["pass"]


@pytest.mark.parametrize("as_entries", [False, True])
def test_management_ports_narrowed_not_deleted(as_entries):
    rules = [rule("AllowRdp", port="3389", priority=100),
             rule("AllowWebAndSsh", port=None, ports=["443", "20-25"], source="Internet", priority=110),
             rule("AllowSshOffice", port="22", source="203.0.113.0/24", priority=120),
             rule("DenySsh", port="22", access="Deny", priority=130)]
    inv = inv_of(make_vm(), nic(), network(bastion=True), nsg(rules, as_entries=as_entries))
    assert inv.get(f"{NSG}/securityRules/AllowRdp")["type"] == "Microsoft.Network/networkSecurityGroups/securityRules"
    res = run("vm-6c", inv)
    assert statuses(res) == ["fail"]
    by_rule = {c.resource_id.rsplit("/", 1)[-1]: c for c in res.changes}
    assert set(by_rule) == {"AllowRdp", "AllowWebAndSsh"}
    rdp = by_rule["AllowRdp"].body["properties"]
    assert rdp["sourceAddressPrefix"] == "VirtualNetwork" and rdp["destinationPortRange"] == "3389"
    web = by_rule["AllowWebAndSsh"].body["properties"]
    assert web["destinationPortRanges"] == ["443", "20-21", "23-25"] and "destinationPortRange" not in web
    assert web["sourceAddressPrefix"] == "Internet"  # everything else the rule allowed stays
    assert all(c.method == "PUT" and c.disruptive and c.depends_on == [] for c in res.changes)
    assert_fix_passes("vm-6c", inv)


def test_management_ports_on_nic_nsg_and_source_lists():
    nic_nsg = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-nic"
    rules = [rule("AnySsh", port="*", source=None, sources=["10.0.0.0/8", "0.0.0.0/0"])]
    inv = inv_of(make_vm(), nic(nsg_id=nic_nsg), network(subnet_nsg=None, bastion=True), nsg(rules, nic_nsg))
    res = run("vm-6c", inv)
    assert statuses(res) == ["fail"]
    body = res.changes[0].body["properties"]
    assert body["destinationPortRanges"] == ["0-21", "23-3388", "3390-65535"]
    assert_fix_passes("vm-6c", inv)
    only_ssh = [rule("Ssh", port="22", source=None, sources=["10.0.0.0/8", "Internet"])]
    inv = inv_of(make_vm(), nic(nsg_id=nic_nsg), network(subnet_nsg=None, bastion=True), nsg(only_ssh, nic_nsg))
    res = run("vm-6c", inv)
    assert res.changes[0].body["properties"]["sourceAddressPrefix"] == "10.0.0.0/8"
    assert_fix_passes("vm-6c", inv)


def test_management_ports_pass_and_wait_for_bastion():
    safe = [rule("Https", port="443"), rule("SshDeny", port="22", access="Deny")]
    assert statuses(run("vm-6c", inv_of(make_vm(), nic(), network(), nsg(safe)))) == ["pass"]
    inv = inv_of(make_vm(), nic(), network(), nsg([rule("AllowRdp")]))
    (c,) = run("vm-6c", inv).changes
    bastion = [ch.id for ch in run("vm-6a", inv).changes if "bastionHosts" in ch.resource_id]
    assert c.depends_on == bastion and bastion


def test_management_ports_error_when_nsgs_unreadable():
    inv = inv_of(make_vm(), nic(), network(), nsg([rule("AllowRdp")]))
    inv.unreadable["microsoft.network/networksecuritygroups"] = "403 AuthorizationFailed"
    assert statuses(run("vm-6c", inv)) == ["error"]
    assert statuses(run("vm-6d", inv)) == ["fail"]


def test_entra_login_extension():
    v = make_vm()
    ok = ext(VM_ID, "AADLoginForWindows", "Microsoft.Azure.ActiveDirectory", "AADLoginForWindows")
    assert statuses(run("vm-6d", inv_of(v, ok))) == ["pass"]
    inv = inv_of(v)
    res = run("vm-6d", inv)
    assert statuses(res) == ["fail"] and res.changes[0].depends_on == []
    assert_fix_passes("vm-6d", inv)
    lin = make_vm("vm-app-01", "Linux")
    del lin["identity"]
    res = run("vm-6d", inv_of(lin))
    assert res.changes[0].body["properties"]["type"] == "AADSSHLoginForLinux"
    assert res.changes[0].depends_on == [change_id("vm-2c", lin["id"], "PATCH")]
    assert res.changes[0].depends_on == [c.id for c in run("vm-2c", inv_of(lin)).changes]


def test_conditional_access_is_an_instruction():
    res = run("vm-6e", inv_of(make_vm()))
    assert statuses(res) == ["manual"] and "Conditional Access" in res.findings[0].message


# ---- step 7 -------------------------------------------------------------------------------------

def test_antimalware_windows_only():
    v = make_vm()
    am = ext(VM_ID, "IaaSAntimalware", "Microsoft.Azure.Security", "IaaSAntimalware")
    assert statuses(run("vm-7a", inv_of(v, am))) == ["pass"]
    mde = ext(VM_ID, "MDE.Windows", "Microsoft.Azure.AzureDefenderForServers", "MDE.Windows")
    assert statuses(run("vm-7a", inv_of(v, mde))) == ["pass"]
    inv = inv_of(v)
    res = run("vm-7a", inv)
    assert statuses(res) == ["fail"] and res.changes[0].action == "create"
    assert_fix_passes("vm-7a", inv)
    stale = ext(VM_ID, "IaaSAntimalware", "Microsoft.Azure.Security", "IaaSAntimalware", autoUpgradeMinorVersion=False)
    inv = inv_of(v, stale)
    res = run("vm-7a", inv)
    assert res.changes[0].action == "update" and res.changes[0].method == "PUT"
    assert_fix_passes("vm-7a", inv)
    assert statuses(run("vm-7a", inv_of(make_vm("vm-app-01", "Linux")))) == ["not_applicable"]


@pytest.mark.parametrize("os", ["Windows", "Linux"])
def test_patch_assessment_and_mode(os):
    assert statuses(run("vm-7b", inv_of(make_vm(os=os)))) == ["pass"]
    assert statuses(run("vm-7c", inv_of(make_vm(os=os)))) == ["pass"]
    v = make_vm(os=os)
    cfg = "windowsConfiguration" if os == "Windows" else "linuxConfiguration"
    v["properties"]["osProfile"][cfg]["patchSettings"] = {}
    inv = inv_of(v)
    res = run("vm-7b", inv)
    assert statuses(res) == ["fail"] and res.findings[0].actual == "ImageDefault"
    assert res.findings[0].property == f"properties.osProfile.{cfg}.patchSettings.assessmentMode"
    assert_fix_passes("vm-7b", inv)
    res = run("vm-7c", inv)
    assert res.findings[0].actual == ("AutomaticByOS" if os == "Windows" else "ImageDefault")
    body = res.changes[0].body["properties"]["osProfile"][cfg]
    assert body["patchSettings"]["automaticByPlatformSettings"] == {"rebootSetting": "IfRequired"}
    assert ("enableAutomaticUpdates" in body) == (os == "Windows")
    assert_fix_passes("vm-7c", inv)


def agent_view(*shown: str, power: str = "running", version: str = "2.7.41491.1102") -> dict[str, Any]:
    """What GET {vm}/instanceView answers (the inventory attaches it as properties.instanceView)."""
    view: dict[str, Any] = {"statuses": [{"code": "ProvisioningState/succeeded"},
                                         {"code": f"PowerState/{power}", "displayStatus": f"VM {power}"}]}
    if shown:
        view["vmAgent"] = {"vmAgentVersion": version, "statuses": [
            {"code": "ProvisioningState/succeeded", "displayStatus": s} for s in shown]}
    return view


def test_vm_agent_is_judged_from_the_instance_view():
    ready = run("vm-7d", inv_of(make_vm(instanceView=agent_view("Ready"))))
    assert statuses(ready) == ["pass"] and "2.7.41491.1102" in ready.findings[0].message
    res = run("vm-7d", inv_of(make_vm(instanceView=agent_view("Not Ready"))))
    assert verdicts(res) == ["fail/manual"] and "168.63.129.16" in res.findings[0].message
    off = make_vm(instanceView=agent_view("Ready"))
    off["properties"]["osProfile"]["windowsConfiguration"]["provisionVMAgent"] = False
    assert verdicts(run("vm-7d", inv_of(off))) == ["fail/manual"]


def test_vm_agent_without_evidence_is_manual_not_pass():
    """provisionVMAgent = true with no agent status is no evidence: the person looks."""
    res = run("vm-7d", inv_of(make_vm()))
    assert statuses(res) == ["manual"] and "could not be read" in res.findings[0].message
    res = run("vm-7d", inv_of(make_vm(instanceView=agent_view(power="deallocated"))))
    assert statuses(res) == ["manual"] and "deallocated" in res.findings[0].message


def test_vm_agent_status_comes_from_instance_view_through_the_sandbox():
    """The gateway reads GET {vm}/instanceView for every VM; the sandbox reports the agent of a
    running VM and nothing for a deallocated one, as ARM does."""
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.target import in_process_target

    sb = Sandbox(None, estate=load_estate("reference"), lro_seconds=0)
    gw = Gateway(in_process_target(sb))
    vms = [f for s in inspect(gw, check_ids=["vm-7d"]).steps for f in s.findings]
    assert vms and {f.status for f in vms} == {"pass"}
    victim = vms[0].resource_id
    p = parse(victim)
    gw.client("compute", p.subscription).virtual_machines.begin_deallocate(p.resource_group, p.name).result()
    after = {f.resource_id: f for s in inspect(gw, check_ids=["vm-7d"]).steps for f in s.findings}
    assert after[victim].status == "manual" and "deallocated" in after[victim].message
    assert {f.status for rid_, f in after.items() if rid_ != victim} == {"pass"}


# ---- step 8 -------------------------------------------------------------------------------------

SERVERS = f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/VirtualMachines"


def servers_pricing(tier: str = "Standard", plan: str | None = "P2", agentless: str = "True") -> dict[str, Any]:
    props: dict[str, Any] = {"pricingTier": tier}
    if plan:
        props["subPlan"] = plan
        props["extensions"] = [{"name": "AgentlessVmScanning", "isEnabled": agentless},
                               {"name": "MdeDesignatedSubscription", "isEnabled": "False"}]
    return {"id": SERVERS, "name": "VirtualMachines", "type": "Microsoft.Security/pricings", "properties": props}


def test_servers_plan():
    assert statuses(run("vm-8a", inv_of(make_vm(), servers_pricing()))) == ["pass"]
    for bad in (servers_pricing("Free", None), servers_pricing(plan="P1"), servers_pricing(agentless="False")):
        inv = inv_of(make_vm(), bad)
        res = run("vm-8a", inv)
        assert statuses(res) == ["fail"] and res.changes[0].billable
        assert_fix_passes("vm-8a", inv)
    res = run("vm-8a", inv_of(make_vm(), servers_pricing(plan="P1")))
    names = [e["name"] for e in res.changes[0].body["properties"]["extensions"]]
    assert names == ["MdeDesignatedSubscription", "AgentlessVmScanning"]  # other extensions kept


def test_mde_integration():
    sid = f"/subscriptions/{SUB}/providers/Microsoft.Security/settings/WDATP"

    def setting(on: bool) -> dict[str, Any]:
        return {"id": sid, "name": "WDATP", "type": "Microsoft.Security/settings", "kind": "DataExportSettings",
                "properties": {"enabled": on}}

    assert statuses(run("vm-8b", inv_of(make_vm(), setting(True)))) == ["pass"]
    inv = inv_of(make_vm(), setting(False))
    res = run("vm-8b", inv)
    assert statuses(res) == ["fail"] and res.changes[0].body["kind"] == "DataExportSettings"
    assert_fix_passes("vm-8b", inv)
    inv = inv_of(make_vm())
    assert_fix_passes("vm-8b", inv)
    inv.unreadable["microsoft.security/settings"] = "403"
    assert statuses(run("vm-8b", inv)) == ["error"]


def jit(vms: list[tuple[str, list[int]]]) -> dict[str, Any]:
    return {"id": f"{RG}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
            "name": "default", "type": "Microsoft.Security/locations/jitNetworkAccessPolicies", "kind": "Basic",
            "location": "westeurope",
            "properties": {"virtualMachines": [{"id": v, "ports": [{"number": p, "protocol": "*",
                                                                     "allowedSourceAddressPrefix": "*",
                                                                     "maxRequestAccessDuration": "PT3H"}
                                                                    for p in ports]} for v, ports in vms]}}


def test_jit_covers_exposed_vms():
    exposed = nsg([rule("AllowRdp", port="3389"), rule("AllowSsh", port="22", priority=110)])
    base = [make_vm(), nic(), network(bastion=True), exposed, servers_pricing()]
    # JIT's deny rules go below the allow rules already there: a covered VM with an allow rule left open fails
    covered = inv_of(*base, jit([(VM_ID, [22, 3389])]))
    res = run("vm-8c", covered)
    assert statuses(res) == ["fail"] and not res.changes
    assert "does not override existing allow rules" in res.findings[0].message
    assert "nsg-web/AllowRdp" in res.findings[0].message and "vm-6c" in res.findings[0].message
    closed = apply_all(covered, run("vm-6c", covered).changes)
    assert statuses(run("vm-8c", closed)) == ["pass"]
    assert statuses(run("vm-8c", inv_of(make_vm(), nic(), network(), nsg([rule("Web", port="443")])))) == ["pass"]
    inv = inv_of(*base)
    res = run("vm-8c", inv)
    assert statuses(res) == ["fail"]
    (c,) = res.changes
    assert c.action == "create" and c.disruptive and c.depends_on == []
    assert "does not override existing allow rules" in c.risk and "vm-6c" in c.risk
    assert c.resource_id.endswith("/locations/westeurope/jitNetworkAccessPolicies/default")
    assert [p["number"] for p in c.body["properties"]["virtualMachines"][0]["ports"]] == [22, 3389]
    # the JIT policy alone leaves the allow rules winning; with vm-6c's narrowing it passes
    jit_only = apply_all(inv, res.changes)
    assert statuses(run("vm-8c", jit_only)) == ["fail"]
    both = apply_all(jit_only, run("vm-6c", jit_only).changes)
    assert statuses(run("vm-8c", both)) == ["pass"]
    # an existing policy that covers other VMs is extended, not replaced
    other = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-other"
    inv = inv_of(*base, jit([(other, [22]), (VM_ID, [3389])]))
    res = run("vm-8c", inv)
    (c,) = res.changes
    assert c.action == "update" and c.method == "PUT"
    ids = [v["id"] for v in c.body["properties"]["virtualMachines"]]
    assert ids == [other, VM_ID]


def test_jit_waits_for_servers_plan_2():
    inv = inv_of(make_vm(), nic(), network(bastion=True), nsg([rule("AllowRdp")]), servers_pricing(plan="P1"))
    (c,) = run("vm-8c", inv).changes
    assert c.depends_on == [change_id("vm-8a", SERVERS, "PUT")]


def assessment(vm_id: str, guid: str, code: str) -> dict[str, Any]:
    return {"id": f"{vm_id}/providers/Microsoft.Security/assessments/{guid}", "name": guid,
            "type": "Microsoft.Security/assessments",
            "properties": {"displayName": vm_article.VM_ASSESSMENTS.get(guid, guid), "status": {"code": code}}}


def test_assessments():
    healthy = [assessment(VM_ID, "ffff0522-1e88-47fc-8382-2a80ba848f5d", "Healthy"),
               assessment(VM_ID, "805651bc-6ecd-4c73-9b55-97a19d0582d0", "NotApplicable")]
    assert statuses(run("vm-8d", inv_of(make_vm(), *healthy))) == ["pass"]
    sick = assessment(VM_ID, "e1145ab1-eb4f-43d8-911b-36ddf771d13f", "Unhealthy")
    res = run("vm-8d", inv_of(make_vm(), *healthy, sick))
    assert verdicts(res) == ["fail/manual"] and "System updates should be installed" in res.findings[0].message
    res = run("vm-8d", inv_of(make_vm()))
    assert statuses(res) == ["manual"] and "vm-8a" in res.findings[0].message
    inv = inv_of(make_vm())
    inv.unreadable["microsoft.security/assessments"] = "403"
    assert statuses(run("vm-8d", inv)) == ["error"]


# ---- the reference estate ---------------------------------------------------------------------

def test_reference_estate_has_work_in_every_vm_step():
    from ztwizard.sandbox.estates import load_estate

    inv = Inventory.from_resources(load_estate("reference"))
    passes = 0
    for step in vm_article.STEPS:
        found = [f.status for c in step.checks for f in c.run(inv).findings]
        assert {"fail", "manual"} & set(found), step.id
        assert "error" not in found, step.id
        passes += found.count("pass")
    assert passes


def test_vm_proposals_apply_through_the_sandbox(tmp_path):
    """Every VM proposal is accepted by ARM's API shape and turns its failure into a pass."""
    before, after, report = sandbox_round_trip([s.id for s in vm_article.STEPS], tmp_path)
    assert not report.failed, [o.line() for o in report.failed]
    # no Key Vault key in the reference estate is fit for a CMK: vm-4a's set waits for --param
    waiting = {o.check for o in report.skipped if o.message.startswith("waiting for parameter")}
    assert waiting == {"vm-4a"}
    failed = [k for k, v in before.items() if v == "fail" and k[0] not in waiting]
    assert len(failed) > 30
    still = {k: after.get(k) for k in failed if after.get(k) != "pass"}
    assert not still


def test_jit_policy_alone_does_not_pass_through_the_sandbox(tmp_path):
    """With the ports still open (vm-6c not applied), the JIT policy lands but does not override the
    allow rules, so vm-8c still fails, now naming the rules to close. JIT needs Defender for Servers
    Plan 2, so vm-8a (its prerequisite) goes in with it."""
    before, after, report = sandbox_round_trip(["vm-8"], tmp_path, skip_checks=["vm-8b"])
    assert not report.failed, [o.line() for o in report.failed]
    assert any(o.check == "vm-8c" for o in report.applied)
    jit_failed = [k for k, v in before.items() if v == "fail" and k[0] == "vm-8c"]
    # still failing, now for a person to close the rules (vm-6c): JIT does not override them
    assert jit_failed and all(after.get(k) == "fail/manual" for k in jit_failed)


def test_cross_resource_checks_report_error_for_any_type_they_need():
    inv = inv_of(make_vm(), nic(), network(), nsg([rule("AllowRdp")]), disk())
    for rtype, checks in {
        "microsoft.storage/storageaccounts": ["vm-1a"],
        "microsoft.network/virtualnetworks": ["vm-1a", "vm-6a", "vm-6c", "vm-8c"],
        "microsoft.compute/virtualmachines/extensions": ["vm-3d", "vm-6d", "vm-7a"],
        "microsoft.compute/disks": ["vm-3a", "vm-3b", "vm-3c", "vm-4b", "vm-4d"],
        "microsoft.security/locations/jitnetworkaccesspolicies": ["vm-8c"],
        "microsoft.network/networkinterfaces": ["vm-6a", "vm-6b", "vm-6c", "vm-8c"],
        "microsoft.keyvault/vaults": ["vm-4a", "storage-1g"],
        "microsoft.keyvault/vaults/keys": ["vm-4a", "storage-1g"],  # unread keys are not "no key to pick"
    }.items():
        broken = inv_of(make_vm(), nic(), network(), nsg([rule("AllowRdp")]), disk())
        broken.unreadable[rtype] = "403 AuthorizationFailed"
        for cid in checks:
            res = run(cid, broken)
            assert statuses(res) == ["error"] and rtype in res.findings[0].message.lower(), (rtype, cid)
            assert not res.changes
        assert "error" not in statuses(run("vm-7b", broken))
    assert "error" not in {s for c in CHECK_BY_ID.values() if c.id.startswith("vm-") for s in statuses(run(c.id, inv))}


def test_reference_plan_changes_are_unique_serialisable_and_dependencies_resolve():
    import json

    from ztwizard.sandbox.estates import load_estate
    from ztwizard.steps import storage

    inv = Inventory.from_resources(load_estate("reference"))
    changes = [c for s in [*storage.STEPS, *vm_article.STEPS] for chk in s.checks for c in chk.run(inv).changes]
    ids = [c.id for c in changes]
    assert len(ids) == len(set(ids))
    for c in changes:
        assert set(c.depends_on) <= set(ids), (c.id, c.depends_on)
        assert c.title and c.risk, c.id
        json.dumps(c.to_dict())
        if c.action == "create":
            assert c.body and c.body.get("type") and c.body.get("name"), c.id
        # an editable parameter is substituted by value, so it must appear in what is sent
        text = json.dumps([c.resource_id, c.body])
        for k, v in c.params.items():
            if v == "":  # not chosen yet: apply skips the change until --param fills it
                continue
            if k == "fix" and CHECK_BY_ID[c.check].creates_by_choice:
                continue  # picks which change is proposed, not a value inside it
            assert json.dumps(v) in text or str(v) in text, (c.id, k)


def test_malformed_ports_open_nothing_and_assignable_scopes_nest():
    assert open_ports(rule("bad", port="ssh")) == []
    assert open_ports(rule("any", port="Any")) == [22, 3389]
    assert common.covers_scope(f"/subscriptions/{SUB}", f"/subscriptions/{SUB}")
    assert common.covers_scope("/", f"/subscriptions/{SUB}")
    assert not common.covers_scope(f"/subscriptions/{SUB[:-1]}", f"/subscriptions/{SUB}")
    assert not common.covers_scope(f"{RG}", f"/subscriptions/{SUB}")


@pytest.mark.slow
def test_storage_and_vm_checks_stay_linear_on_a_large_estate():
    import time

    from ztwizard.sandbox.estates import load_estate
    from ztwizard.steps import storage

    inv = Inventory.from_resources(load_estate("scale:20000"))
    started = time.monotonic()
    for step in [*storage.STEPS, *vm_article.STEPS]:
        for check in step.checks:
            check.run(inv)
    assert time.monotonic() - started < 60  # was minutes before the per-inventory indexes


# ---- vm-4a: the double-encryption set and its key access ------------------------------------------

def _fit_key(location: str = "westeurope") -> list[dict[str, Any]]:
    from .test_storage import key, vault

    return [vault(location=location), key()]


def test_des_is_created_with_the_one_fit_key_and_its_access_follows_next_run():
    from .test_storage import VAULT_ID

    inv = inv_of(make_vm(), *_fit_key())
    res = run("vm-4a", inv)
    assert statuses(res) == ["fail"] and "re-run the plan" in res.findings[0].message
    (create,) = res.changes
    assert create.action == "create" and create.disruptive and create.depends_on == []
    assert create.body["identity"] == {"type": "SystemAssigned"}
    assert create.body["properties"]["encryptionType"] == "EncryptionAtRestWithPlatformAndCustomerKeys"
    assert create.body["properties"]["activeKey"] == {
        "keyUrl": "https://kv-cmk.vault.azure.net/keys/cmk/0123456789abcdef", "sourceVault": {"id": VAULT_ID}}
    assert create.params == {"name": "des-double-westeurope", "keyVaultId": VAULT_ID, "keyName": "cmk",
                             "identity": "SystemAssigned"}
    # ARM gives the new set its principal: the next run grants it key access, then it passes
    made = apply_all(inv, [create])
    des_entry = made.get(create.resource_id)
    des_entry["identity"]["principalId"] = "dddddddd-0000-0000-0000-000000000001"
    made = Inventory.from_resources(made.all())
    res = run("vm-4a", made)
    assert statuses(res) == ["fail"]
    (grant,) = res.changes
    assert grant.resource_id == VAULT_ID
    assert grant.body["properties"]["accessPolicies"][0]["objectId"] == "dddddddd-0000-0000-0000-000000000001"
    assert statuses(run("vm-4a", apply_all(made, [grant]))) == ["pass"]


def test_des_with_a_user_assigned_identity_is_granted_before_it_is_created():
    from ztwizard.engine import edit_change, make_plan

    from .test_storage import UAI_ID, UAI_PRINCIPAL, uai

    inv = inv_of(make_vm(), *_fit_key(), uai())
    plan = make_plan(inv, check_ids=["vm-4a"])
    (create,) = plan.step("vm-4").changes
    edit_change(inv, plan, create.id, {"identity": UAI_ID})
    changes = plan.step("vm-4").changes
    grant = next(c for c in changes if c.action == "update")
    des_create = next(c for c in changes if c.id == create.id)
    assert des_create.depends_on == [grant.id]
    assert des_create.body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {UAI_ID: {}}}
    assert grant.body["properties"]["accessPolicies"][0]["objectId"] == UAI_PRINCIPAL
    fixed = apply_all(inv, changes)
    assert statuses(run("vm-4a", fixed)) == ["pass"]


def test_des_needs_a_vault_in_its_own_region():
    res = run("vm-4a", inv_of(make_vm(), *_fit_key("northeurope")))
    (change,) = res.changes
    assert change.params["keyVaultId"] == "" and "--param CHANGE.keyVaultId" in res.findings[0].message


def test_disks_wait_for_the_sets_key_access():
    from .test_storage import key, vault

    unreachable = des()
    unreachable["identity"]["principalId"] = "dddddddd-0000-0000-0000-000000000002"
    unreachable["properties"]["activeKey"]["sourceVault"] = {"id": vault()["id"]}
    inv = inv_of(make_vm(), unreachable, vault(), key(),
                 disk(encryption={"type": "EncryptionAtRestWithPlatformKey"}))
    grants = run("vm-4a", inv)
    assert statuses(grants) == ["fail"]
    (grant,) = grants.changes
    (move,) = run("vm-4b", inv).changes
    assert move.depends_on == [grant.id]


def test_des_round_trip_through_the_sandbox(tmp_path):
    """Round 1 creates the set (disruptive: disks move to it only on deallocated VMs); ARM gives it
    a principal, so round 2 grants that principal key access; the set then passes, and undo,
    newest first, restores the vault's policies and deletes the set."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.sandbox.estates import reference as ref
    from ztwizard.target import in_process_target
    from ztwizard.undo import undo_changes

    kv = f"{ref.RG_VMS}/providers/Microsoft.KeyVault/vaults/kv-contoso-disks"
    estate = [*load_estate("reference"),
              {"id": kv, "type": "Microsoft.KeyVault/vaults", "location": "westeurope", "properties": {
                  "tenantId": ref.TENANT_ID, "sku": {"family": "A", "name": "premium"}, "accessPolicies": [],
                  "enableSoftDelete": True, "enablePurgeProtection": True,
                  "vaultUri": "https://kv-contoso-disks.vault.azure.net/"}},
              {"id": f"{kv}/keys/cmk-disks", "type": "Microsoft.KeyVault/vaults/keys",
               "properties": {"kty": "RSA-HSM", "attributes": {"enabled": True},
                              "keyUri": "https://kv-contoso-disks.vault.azure.net/keys/cmk-disks",
                              "keyUriWithVersion": "https://kv-contoso-disks.vault.azure.net/keys/cmk-disks/abc123"}}]
    gw = Gateway(in_process_target(Sandbox(None, estate=estate, lro_seconds=0)))
    vault_before = gw.read(kv)

    def verdicts() -> dict[str, str]:
        return {f.resource_id.lower(): f.status for s in inspect(gw, check_ids=["vm-4a"]).steps for f in s.findings}

    def apply_round(journal: Journal) -> tuple[str, list[Any]]:
        changes = inspect(gw, check_ids=["vm-4a"]).changes()
        session = start_session(journal, gw, changes)
        report = apply_changes(gw, journal, session, changes, allow_disruptive=True, allow_cost=True)
        assert not report.failed and not report.skipped, [o.line() for o in report.outcomes]
        return session, changes

    with Journal(tmp_path) as journal:
        first, (create,) = apply_round(journal)
        assert create.action == "create" and create.disruptive
        des_id = create.resource_id
        assert gw.read(des_id)["identity"]["principalId"]
        assert verdicts()[des_id.lower()] == "fail"  # it cannot reach its key yet
        second, (grant,) = apply_round(journal)
        assert grant.resource_id == kv
        assert verdicts()[des_id.lower()] == "pass"
        for session in (second, first):
            report = undo_changes(gw, journal, session)
            assert report.ok, report.lines()
    assert gw.read(des_id) is None
    assert gw.read(kv)["properties"]["accessPolicies"] == vault_before["properties"]["accessPolicies"]


def test_sandbox_refuses_a_des_whose_vault_cannot_hold_a_customer_key():
    from azure.core.exceptions import HttpResponseError

    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.sandbox.estates import reference as ref
    from ztwizard.target import in_process_target

    gw = Gateway(in_process_target(Sandbox(None, estate=load_estate("reference"), lro_seconds=0)))
    des_id = f"{ref.RG_VMS}/providers/Microsoft.Compute/diskEncryptionSets/des-x"
    body = {"location": "westeurope", "identity": {"type": "SystemAssigned"}, "properties": {
        "encryptionType": "EncryptionAtRestWithPlatformAndCustomerKeys",
        "activeKey": {"keyUrl": "https://kv-contoso-agw-prod.vault.azure.net/keys/k/1",
                      "sourceVault": {"id": ref.KEY_VAULT}}}}
    compute = gw.client("compute", ref.WORKLOAD_SUB)
    with pytest.raises(HttpResponseError, match="purge protection"):  # the App Gateway's vault has none
        compute.disk_encryption_sets.begin_create_or_update(ref.RG_VMS.rsplit("/", 1)[-1], "des-x", body).result()
    assert gw.read(des_id) is None
