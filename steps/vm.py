"""Virtual machines article: the eight steps that harden IaaS VMs (isolation, RBAC, boot
integrity, disk encryption, applications, access paths, maintenance, threat detection)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ztwizard import remedy
from ztwizard import resource_id as rid
from ztwizard.inventory import Inventory
from ztwizard.model import Change, CheckResult, Finding, change_id
from ztwizard.paths import get_path

from ._base import Check, Step, memo, not_applicable, property_check, unreadable
from .common import ASSESSMENT as ASSESSMENTS
from .common import CONTRIBUTOR, OWNER, VM, broad_user_assignments, is_true, pricing
from .common import NIC as NICS
from .common import PRICING as PRICINGS
from .common import ROLE_ASSIGNMENT as ROLE_ASSIGNMENTS
from .common import SUBNET as SUBNETS
from .common import VNET as VNETS

EXTENSIONS = "Microsoft.Compute/virtualMachines/extensions"
DISKS = "Microsoft.Compute/disks"
DES = "Microsoft.Compute/diskEncryptionSets"
NSGS = "Microsoft.Network/networkSecurityGroups"
RULES = "Microsoft.Network/networkSecurityGroups/securityRules"
PEERINGS = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
BASTIONS = "Microsoft.Network/bastionHosts"
PUBLIC_IPS = "Microsoft.Network/publicIPAddresses"
ROLE_DEFINITIONS = "Microsoft.Authorization/roleDefinitions"
SETTINGS = "Microsoft.Security/settings"
JIT = "Microsoft.Security/locations/jitNetworkAccessPolicies"

VM_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
STANDING_ADMIN_ROLES = {OWNER: "Owner", CONTRIBUTOR: "Contributor"}
JOIN_ACTION = "Microsoft.Network/virtualNetworks/subnets/join/action"

MANAGEMENT_PORTS = (22, 3389)
OPEN_SOURCES = {"*", "internet", "0.0.0.0/0", "any"}
DOUBLE = "EncryptionAtRestWithPlatformAndCustomerKeys"

# Defender for Cloud assessments about a VM (steps.md appendix A).
VM_ASSESSMENTS = {
    "bc303248-3d14-44c2-96a0-55f5c326b5fe": "Management ports should be closed",
    "805651bc-6ecd-4c73-9b55-97a19d0582d0": "Management ports should be protected with JIT",
    "483f12ed-ae23-447e-a2de-a67a10db4353": "Internet-facing VMs should be protected with NSGs",
    "a9341235-9389-42f0-a0bf-9bfb57960d44": "Non-internet-facing VMs should be protected with NSGs",
    "3b20e985-f71f-483b-b078-f30d73936d43": "All network ports should be restricted on NSGs",
    "c3b51c94-588b-426b-a892-24696f9e54cc": "IP forwarding should be disabled",
    "e1145ab1-eb4f-43d8-911b-36ddf771d13f": "System updates should be installed",
    "ffff0522-1e88-47fc-8382-2a80ba848f5d": "A vulnerability assessment solution should be enabled",
}


# ---- reading a VM and what surrounds it ------------------------------------------------------

def os_type(vm: dict[str, Any]) -> str:
    t = get_path(vm, "properties.storageProfile.osDisk.osType")
    if t:
        return "Windows" if t.lower() == "windows" else "Linux"
    if get_path(vm, "properties.osProfile.windowsConfiguration") is not None:
        return "Windows"
    return "Linux"


def os_config_path(vm: dict[str, Any]) -> str:
    return "properties.osProfile." + ("windowsConfiguration" if os_type(vm) == "Windows" else "linuxConfiguration")


def hyperv_generation(vm: dict[str, Any], inv: Inventory) -> str | None:
    """V1/V2 from the OS disk (absent on the disk means V1), or the instance view; None if unknown."""
    disk = inv.get(get_path(vm, "properties.storageProfile.osDisk.managedDisk.id"))
    if disk is not None:
        return get_path(disk, "properties.hyperVGeneration") or "V1"
    return (get_path(vm, "properties.instanceView.hyperVGeneration")
            or get_path(vm, "properties.extended.instanceView.hyperVGeneration"))  # Resource Graph's shape


def vm_nics(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ref in get_path(vm, "properties.networkProfile.networkInterfaces") or []:
        nic = inv.get(ref.get("id"))
        if nic is not None:
            out[nic["id"].lower()] = nic
    for nic in memo(inv, "nics_by_vm", lambda: _nics_by_vm(inv)).get(vm["id"].lower(), []):
        out[nic["id"].lower()] = nic
    return sorted(out.values(), key=lambda r: r["id"].lower())


def _nics_by_vm(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for nic in inv.of_type(NICS):
        owner = (get_path(nic, "properties.virtualMachine.id") or "").rstrip("/").lower()
        if owner:
            index.setdefault(owner, []).append(nic)
    return index


def nic_subnet_ids(nic: dict[str, Any]) -> list[str]:
    return [s for s in (get_path(c, "properties.subnet.id") for c in get_path(nic, "properties.ipConfigurations") or [])
            if s]


def vm_vnet_ids(vm: dict[str, Any], inv: Inventory) -> list[str]:
    out: list[str] = []
    for nic in vm_nics(vm, inv):
        for s in nic_subnet_ids(nic):
            v = rid.parse(s).parent or ""
            if v and v.lower() not in {x.lower() for x in out}:
                out.append(v)
    return out


def vm_nsgs(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    """The NSGs that filter the VM's traffic: its NICs' and its NICs' subnets'."""
    ids: list[str] = []
    for nic in vm_nics(vm, inv):
        ids.append(get_path(nic, "properties.networkSecurityGroup.id") or "")
        for s in nic_subnet_ids(nic):
            ids.append(get_path(inv.get(s) or {}, "properties.networkSecurityGroup.id") or "")
    out: dict[str, dict[str, Any]] = {}
    for i in ids:
        nsg = inv.get(i)
        if nsg is not None:
            out[nsg["id"].lower()] = nsg
    return list(out.values())


def extensions(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    return inv.children(vm["id"], EXTENSIONS)


def find_extension(vm: dict[str, Any], inv: Inventory, publisher: str, types: Iterable[str]) -> dict[str, Any] | None:
    wanted = {t.lower() for t in types}
    for ext in extensions(vm, inv):
        if (get_path(ext, "properties.publisher") or "").lower() == publisher.lower() and \
                (get_path(ext, "properties.type") or "").lower() in wanted:
            return ext
    return None


def extension_change(check: str, vm: dict[str, Any], name: str, publisher: str, ext_type: str,
                     version: str, *, settings: dict[str, Any] | None = None, **flags: Any) -> Change:
    body: dict[str, Any] = {
        "name": name, "type": EXTENSIONS, "location": vm.get("location"),
        "properties": {"publisher": publisher, "type": ext_type, "typeHandlerVersion": version,
                       "autoUpgradeMinorVersion": True}}
    if settings:
        body["properties"]["settings"] = settings
    return remedy.create(check, f"{vm['id']}/extensions/{name}", body,
                         params={"typeHandlerVersion": version}, **flags)


def _add(out: CheckResult, change: Change) -> Change:
    """Add a change once: several findings can share one fix (one NSG rule, one Bastion)."""
    for c in out.changes:
        if c.id == change.id:
            return c
    out.changes.append(change)
    return change


def _vms(inv: Inventory, check: str, out: CheckResult) -> list[dict[str, Any]]:
    vms = inv.of_type(VM)
    if not vms:
        out.findings.append(not_applicable(check, "virtual machine", inv))
    return vms


# ---- "open to the internet" ------------------------------------------------------------------

def port_ranges(rule: dict[str, Any]) -> list[tuple[int, int]]:
    """Destination port ranges of a rule: a single value, a range `20-25`, a list, or `*`."""
    raw = [get_path(rule, "properties.destinationPortRange")] + list(
        get_path(rule, "properties.destinationPortRanges") or [])
    out = []
    for r in raw:
        r = str(r or "").strip()
        if r == "*" or r.lower() == "any":
            out.append((0, 65535))
            continue
        lo, _, hi = r.partition("-")
        try:
            out.append((int(lo), int(hi or lo)))
        except ValueError:
            continue  # not a port ARM would accept; it opens nothing
    return out


def sources(rule: dict[str, Any]) -> list[str]:
    raw = [get_path(rule, "properties.sourceAddressPrefix")] + list(
        get_path(rule, "properties.sourceAddressPrefixes") or [])
    return [s for s in raw if s]


def open_ports(rule: dict[str, Any], ports: Iterable[int] = MANAGEMENT_PORTS) -> list[int]:
    """The given ports this rule opens to the internet (empty when it does not)."""
    p = rule.get("properties") or {}
    if (p.get("direction") or "").lower() != "inbound" or (p.get("access") or "").lower() != "allow":
        return []
    if (p.get("protocol") or "*").lower() not in ("*", "tcp", "udp"):
        return []
    if not any(s.lower() in OPEN_SOURCES for s in sources(rule)):
        return []
    ranges = port_ranges(rule)
    return [port for port in ports if any(a <= port <= b for a, b in ranges)]


def open_rules(vm: dict[str, Any], inv: Inventory) -> list[tuple[dict[str, Any], list[int]]]:
    out = []
    for nsg in vm_nsgs(vm, inv):
        for rule in inv.children(nsg["id"], RULES):
            hit = open_ports(rule)
            if hit:
                out.append((rule, hit))
    return out


def _subtract(ranges: list[tuple[int, int]], ports: Iterable[int]) -> list[tuple[int, int]]:
    out = list(ranges)
    for port in ports:
        nxt = []
        for a, b in out:
            if a <= port <= b:
                if a < port:
                    nxt.append((a, port - 1))
                if port < b:
                    nxt.append((port + 1, b))
            else:
                nxt.append((a, b))
        out = nxt
    return out


def _fmt(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def narrow_rule(check: str, rule: dict[str, Any], **flags: Any) -> Change:
    """PUT the rule without the management ports; if it opened nothing else, keep it but limit its
    source to the virtual network. Narrowing rather than deleting keeps every other flow the rule
    allows, and undo is a PUT of the exact prior rule."""
    rest = _subtract(port_ranges(rule), MANAGEMENT_PORTS)

    def mutate(body: dict[str, Any]) -> None:
        p = body.setdefault("properties", {})
        if rest:
            p.pop("destinationPortRange", None)
            p["destinationPortRanges"] = [_fmt(r) for r in rest]
            return
        kept = [s for s in sources(rule) if s.lower() not in OPEN_SOURCES]
        p.pop("sourceAddressPrefix", None)
        p.pop("sourceAddressPrefixes", None)
        if len(kept) > 1:
            p["sourceAddressPrefixes"] = kept
        else:
            p["sourceAddressPrefix"] = kept[0] if kept else "VirtualNetwork"

    shown = ["properties.destinationPortRange", "properties.destinationPortRanges"] if rest else \
        ["properties.sourceAddressPrefix", "properties.sourceAddressPrefixes"]
    return remedy.put_mutated(check, rule, mutate, shown, **flags)


# ---- step 1: logical isolation ---------------------------------------------------------------

SHARED_INFRA_TYPES = {VNETS: "virtual network", "Microsoft.Storage/storageAccounts": "storage account",
                      "Microsoft.Network/azureFirewalls": "firewall",
                      "Microsoft.Network/virtualNetworkGateways": "VPN/ExpressRoute gateway",
                      BASTIONS: "Bastion host"}
SHARED_INFRA = {t.lower(): what for t, what in SHARED_INFRA_TYPES.items()}


def _shared_infra_by_rg(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for t in SHARED_INFRA_TYPES:
        for r in inv.of_type(t):
            index.setdefault((rid.resource_group_id(r["id"]) or "").lower(), []).append(r)
    return index


def _eval_isolation(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-1a", VM, *(t for t in SHARED_INFRA_TYPES))
    if err:
        return err
    out = CheckResult()
    vms = _vms(inv, "vm-1a", out)
    groups: dict[str, str] = {}
    for vm in vms:
        g = rid.resource_group_id(vm["id"]) or ""
        groups.setdefault(g.lower(), g)
    for g in sorted(groups.values(), key=str.lower):
        mixed = memo(inv, "shared_infra_by_rg", lambda: _shared_infra_by_rg(inv)).get(g.lower(), [])
        if not mixed:
            out.findings.append(Finding("vm-1a", g, "pass", "", None, None,
                                        "The resource group holds workload resources only."))
            continue
        names = ", ".join(f"{SHARED_INFRA[r['type'].lower()]} {r['name']}" for r in sorted(mixed, key=lambda r: r["id"]))
        out.findings.append(Finding(
            "vm-1a", g, "manual", "", [r["id"] for r in mixed], "no shared infrastructure",
            f"Resource group {rid.parse(g).name} mixes VMs with {names}. Keep VMs in resource groups of "
            "their own (by workload or data classification) so RBAC and policy can be scoped to them: "
            "move the shared resources to a network or data group (Move resources, after checking "
            "move support) or put new VMs elsewhere."))
    return out


# ---- step 2: RBAC ------------------------------------------------------------------------------

def _eval_vm_rbac(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-2a", VM, ROLE_ASSIGNMENTS)
    if err:
        return err
    out = CheckResult()
    for vm in _vms(inv, "vm-2a", out):
        rg = rid.resource_group_id(vm["id"]) or ""
        hits = broad_user_assignments(inv, [vm["id"], rg], STANDING_ADMIN_ROLES)
        if not hits:
            out.findings.append(Finding("vm-2a", vm["id"], "pass", "properties.roleDefinitionId",
                                        message="No user holds standing Owner or Contributor on the VM or its group."))
            continue
        held = "; ".join(f"{role} for user {get_path(a, 'properties.principalId')}" for a, role in hits)
        out.findings.append(Finding(
            "vm-2a", vm["id"], "manual", "properties.roleDefinitionId", [a["id"] for a, _ in hits],
            "login roles held by groups",
            f"Standing admin access to {vm['name']}: {held}. Give sign-in through groups holding Virtual "
            "Machine User Login or Virtual Machine Administrator Login, make Owner/Contributor PIM-eligible "
            "instead of permanent, then remove the direct assignments in Access control (IAM)."))
    return out


def _join_role_ok(role: dict[str, Any]) -> bool:
    if (get_path(role, "properties.type") or "").lower() != "customrole":
        return False
    actions = [a for p in get_path(role, "properties.permissions") or [] for a in p.get("actions") or []]
    if not any(a.lower() == JOIN_ACTION.lower() for a in actions):
        return False
    return not any("*" in a or a.lower().endswith(("/write", "/delete")) for a in actions)


def _covers(assignable: str, scope: str) -> bool:
    """A role assignable at a scope can be assigned at that scope and below it."""
    a, s = assignable.rstrip("/").lower(), scope.rstrip("/").lower()
    return a == "" or a == s or s.startswith(a + "/")


def _eval_join_role(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-2b", VM, ROLE_DEFINITIONS)
    if err:
        return err
    out = CheckResult()
    vms = _vms(inv, "vm-2b", out)
    subs = sorted({rid.subscription_of(vm["id"]) or "" for vm in vms})
    for sub in subs:
        scope = f"/subscriptions/{sub}"
        roles = [r for r in inv.of_type(ROLE_DEFINITIONS) if _join_role_ok(r) and any(
            _covers(s, scope) for s in get_path(r, "properties.assignableScopes") or [])]
        if roles:
            out.findings.append(Finding("vm-2b", scope, "pass", "properties.permissions", None, JOIN_ACTION,
                                        f"Custom role {get_path(roles[0], 'properties.roleName')} grants subnet join only."))
            continue
        guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ztwizard/vnet-join/{sub.lower()}"))
        name = "Virtual Network Subnet Joiner"
        body = {"name": guid, "type": ROLE_DEFINITIONS, "properties": {
            "roleName": name, "type": "CustomRole",
            "description": "Join NICs to existing subnets without the right to change the network.",
            "permissions": [{"actions": ["Microsoft.Network/virtualNetworks/read",
                                         "Microsoft.Network/virtualNetworks/subnets/read", JOIN_ACTION],
                             "notActions": [], "dataActions": [], "notDataActions": []}],
            "assignableScopes": [scope]}}
        out.findings.append(Finding("vm-2b", scope, "fail", "properties.permissions", None, JOIN_ACTION,
                                    "No custom role grants subnet join without broader network rights."))
        out.changes.append(remedy.create(
            "vm-2b", f"{scope}/providers/{ROLE_DEFINITIONS}/{guid}", body, params={"roleName": name},
            title=f"Create the custom role '{name}' in subscription {sub}",
            risk="None until it is assigned: a definition grants nothing by itself."))
    return out


def _identity_fix(vm: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    ident = get_path(vm, "identity") or {}
    uai: dict[str, dict[str, Any]] = {k: {} for k in (ident.get("userAssignedIdentities") or {})}
    value: dict[str, Any] = {"type": "SystemAssigned, UserAssigned" if uai else "SystemAssigned"}
    if uai:
        value["userAssignedIdentities"] = uai
    return {"identity": value}


def has_system_identity(vm: dict[str, Any]) -> bool:
    return "systemassigned" in (get_path(vm, "identity.type") or "").lower().replace(" ", "")


# ---- step 3: secure boot ----------------------------------------------------------------------

TRUSTED = ("TrustedLaunch", "ConfidentialVM")
GEN1_INSTRUCTION = ("The OS disk is Generation 1, which cannot run Trusted Launch: upgrade it to Gen2 "
                    "first (validate and convert the disk to GPT with MBR2GPT on Windows, then switch "
                    "the VM to Trusted Launch), or rebuild it from a Gen2 image; take a backup first.")
UNKNOWN_GEN = ("The OS disk's Hyper-V generation could not be read; confirm it is V2 on the disk's "
               "Overview page before enabling Trusted Launch.")


def _trusted(vm: dict[str, Any]) -> bool:
    return get_path(vm, "properties.securityProfile.securityType") in TRUSTED


def _trusted_launch_change(vm: dict[str, Any]) -> Change:
    return remedy.patch(
        "vm-3a", vm, {"properties.securityProfile.securityType": "TrustedLaunch",
                      "properties.securityProfile.uefiSettings.secureBootEnabled": True,
                      "properties.securityProfile.uefiSettings.vTpmEnabled": True},
        title=f"Enable Trusted Launch on {vm['name']} (deallocates it)", disruptive=True,
        risk="The VM is deallocated and restarted; going back to Standard may not be possible. Take a restore point first.")


def _boot_check(check: str, leaf: str, what: str) -> Callable[[Inventory], CheckResult]:
    path = f"properties.securityProfile.uefiSettings.{leaf}"

    def evaluate(inv: Inventory) -> CheckResult:
        err = unreadable(inv, check, VM, DISKS)
        if err:
            return err
        out = CheckResult()
        for vm in _vms(inv, check, out):
            actual = get_path(vm, path) or False
            if _trusted(vm) and actual is True:
                out.findings.append(Finding(check, vm["id"], "pass", path, True, True, f"{what} is on."))
                continue
            gen = hyperv_generation(vm, inv)
            if not _trusted(vm) and gen != "V2":
                out.findings.append(Finding(check, vm["id"], "manual", path, actual, True,
                                            f"{what} needs Trusted Launch. "
                                            + (GEN1_INSTRUCTION if gen == "V1" else UNKNOWN_GEN)))
                continue
            out.findings.append(Finding(check, vm["id"], "fail", path, actual, True, f"{what} is off."))
            change = remedy.patch(check, vm, {path: True}, title=f"Turn on {what} on {vm['name']} (deallocates it)",
                                  disruptive=True, risk="The VM is deallocated and restarted; unsigned "
                                                        "kernels or drivers may not boot.")
            if not _trusted(vm):
                change.depends_on = [_trusted_launch_change(vm).id]
            out.changes.append(change)
        return out

    return evaluate


def _eval_trusted_launch(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-3a", VM, DISKS)
    if err:
        return err
    out = CheckResult()
    path = "properties.securityProfile.securityType"
    for vm in _vms(inv, "vm-3a", out):
        actual = get_path(vm, path) or "Standard"
        if actual in TRUSTED:
            out.findings.append(Finding("vm-3a", vm["id"], "pass", path, actual, "TrustedLaunch",
                                        f"Security type is {actual}."))
            continue
        gen = hyperv_generation(vm, inv)
        if gen != "V2":
            out.findings.append(Finding("vm-3a", vm["id"], "manual", path, actual, "TrustedLaunch",
                                        f"Security type is {actual}. "
                                        + (GEN1_INSTRUCTION if gen == "V1" else UNKNOWN_GEN)))
            continue
        out.findings.append(Finding("vm-3a", vm["id"], "fail", path, actual, "TrustedLaunch",
                                    f"Security type is {actual}; the Gen2 OS disk can run Trusted Launch."))
        out.changes.append(_trusted_launch_change(vm))
    return out


def _eval_attestation(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-3d", VM, EXTENSIONS, DISKS)
    if err:
        return err
    out = CheckResult()
    prop = "properties.type"
    for vm in _vms(inv, "vm-3d", out):
        publisher = f"Microsoft.Azure.Security.{os_type(vm)}Attestation"
        ext = find_extension(vm, inv, publisher, ["GuestAttestation"])
        if ext is not None and (get_path(ext, "properties.provisioningState") or "Succeeded") == "Succeeded":
            out.findings.append(Finding("vm-3d", vm["id"], "pass", prop, "GuestAttestation", "GuestAttestation",
                                        "The Guest Attestation extension is installed."))
            continue
        if ext is not None:
            out.findings.append(Finding(
                "vm-3d", vm["id"], "manual", "properties.provisioningState",
                get_path(ext, "properties.provisioningState"), "Succeeded",
                f"The Guest Attestation extension on {vm['name']} is "
                f"{get_path(ext, 'properties.provisioningState')}: check that the VM has outbound access to "
                "the attestation service, then remove and reinstall the extension."))
            continue
        gen = hyperv_generation(vm, inv)
        boot_ready = _trusted(vm) and get_path(vm, "properties.securityProfile.uefiSettings.secureBootEnabled") \
            and get_path(vm, "properties.securityProfile.uefiSettings.vTpmEnabled")
        if not _trusted(vm) and gen != "V2":
            out.findings.append(Finding("vm-3d", vm["id"], "manual", prop, None, "GuestAttestation",
                                        "Guest Attestation needs Trusted Launch with Secure Boot and vTPM. "
                                        + (GEN1_INSTRUCTION if gen == "V1" else UNKNOWN_GEN)))
            continue
        out.findings.append(Finding("vm-3d", vm["id"], "fail", prop, None, "GuestAttestation",
                                    "The Guest Attestation extension is not installed."))
        change = extension_change("vm-3d", vm, "GuestAttestation", publisher, "GuestAttestation", "1.0",
                                  title=f"Install Guest Attestation on {vm['name']}",
                                  risk="Boot integrity results appear in Defender for Cloud; no restart.")
        if not boot_ready:
            deps = []
            if not _trusted(vm):
                deps.append(_trusted_launch_change(vm).id)
            else:
                for check, leaf in (("vm-3b", "secureBootEnabled"), ("vm-3c", "vTpmEnabled")):
                    if get_path(vm, f"properties.securityProfile.uefiSettings.{leaf}") is not True:
                        deps.append(change_id(check, vm["id"], "PATCH"))
            change.depends_on = deps
        out.changes.append(change)
    return out


# ---- step 4: CMK and double encryption ---------------------------------------------------------

def double_sets(inv: Inventory, location: str | None) -> list[dict[str, Any]]:
    return [d for d in inv.of_type(DES) if get_path(d, "properties.encryptionType") == DOUBLE
            and (d.get("location") or "").lower() == (location or "").lower()]


def _eval_des(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-4a", VM, DES)
    if err:
        return err
    out = CheckResult()
    vms = _vms(inv, "vm-4a", out)
    prop = "properties.encryptionType"
    for d in inv.of_type(DES):
        actual = get_path(d, prop)
        if actual == DOUBLE:
            out.findings.append(Finding("vm-4a", d["id"], "pass", prop, actual, DOUBLE,
                                        "The set double-encrypts with platform and customer keys."))
        else:
            out.findings.append(Finding(
                "vm-4a", d["id"], "manual", prop, actual, DOUBLE,
                f"Disk encryption set {d['name']} uses {actual}: set its encryption type to "
                f"{DOUBLE} (Disk encryption sets > {d['name']} > Encryption type) or create a new set "
                "with it, then move the disks to that set."))
    regions = sorted({(vm.get("location") or "").lower() for vm in vms})
    for region in regions:
        if double_sets(inv, region):
            continue
        sub = inv.subscriptions[0] if inv.subscriptions else ""
        out.findings.append(Finding(
            "vm-4a", f"/subscriptions/{sub}" if sub else "", "manual", prop, None, DOUBLE,
            f"No double-encryption disk encryption set in {region}. Create a Key Vault key (purge protection "
            f"on), then a disk encryption set in {region} with encryption type {DOUBLE} using that key, and "
            "grant the set's identity 'Key Vault Crypto Service Encryption User' on the vault: the key is "
            "yours to choose, so the wizard does not pick one."))
    return out


def _eval_disk_cmk(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-4b", DISKS, DES)
    if err:
        return err
    out = CheckResult()
    disks = inv.of_type(DISKS)
    if not disks:
        out.findings.append(not_applicable("vm-4b", "managed disk", inv))
        return out
    prop = "properties.encryption"
    for disk in disks:
        enc = get_path(disk, prop) or {}
        actual = enc.get("type") or "EncryptionAtRestWithPlatformKey"
        if actual == DOUBLE and enc.get("diskEncryptionSetId"):
            out.findings.append(Finding("vm-4b", disk["id"], "pass", f"{prop}.type", actual, DOUBLE,
                                        "Double-encrypted with a customer-managed key."))
            continue
        sets = double_sets(inv, disk.get("location"))
        if not sets:
            out.findings.append(Finding(
                "vm-4b", disk["id"], "manual", f"{prop}.type", actual, DOUBLE,
                f"Disk {disk['name']} uses {actual}; there is no double-encryption disk encryption set in "
                f"{disk.get('location')} yet: create one (vm-4a), then re-run to move the disk to it."))
            continue
        out.findings.append(Finding("vm-4b", disk["id"], "fail", f"{prop}.type", actual, DOUBLE,
                                    f"Disk {disk['name']} uses {actual}."))
        out.changes.append(remedy.patch(
            "vm-4b", disk, {prop: {"type": DOUBLE, "diskEncryptionSetId": sets[0]["id"]}},
            title=f"Double-encrypt disk {disk['name']} with {sets[0]['name']}", disruptive=True,
            risk="The disk's VM must be deallocated; revoking the key makes the disk unusable."))
    return out


def _eval_disk_network(inv: Inventory) -> CheckResult:
    out = CheckResult()
    disks = inv.of_type(DISKS)
    if not disks:
        out.findings.append(not_applicable("vm-4d", "managed disk", inv))
        return out
    for disk in disks:
        policy = get_path(disk, "properties.networkAccessPolicy") or "AllowAll"
        public = get_path(disk, "properties.publicNetworkAccess") or "Enabled"
        actual = {"networkAccessPolicy": policy, "publicNetworkAccess": public}
        expected = {"networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled"}
        if policy in ("DenyAll", "AllowPrivate") and public == "Disabled":
            out.findings.append(Finding("vm-4d", disk["id"], "pass", "properties.networkAccessPolicy", actual,
                                        expected, "The disk cannot be exported over the internet."))
            continue
        out.findings.append(Finding("vm-4d", disk["id"], "fail", "properties.networkAccessPolicy", actual, expected,
                                    f"Export and upload are allowed ({policy}, public access {public})."))
        values = {"properties.publicNetworkAccess": "Disabled"}
        if policy not in ("DenyAll", "AllowPrivate"):
            values["properties.networkAccessPolicy"] = "DenyAll"
        out.changes.append(remedy.patch("vm-4d", disk, values, title=f"Block public export of disk {disk['name']}",
                                        risk="Disk export and SAS download workflows stop working."))
    return out


# ---- step 5: applications ----------------------------------------------------------------------

def _eval_gallery_apps(inv: Inventory) -> CheckResult:
    out = CheckResult()
    prop = "properties.applicationProfile.galleryApplications"
    for vm in _vms(inv, "vm-5a", out):
        apps = [a.get("packageReferenceId") or "" for a in get_path(vm, prop) or []]
        if not apps:
            out.findings.append(Finding(
                "vm-5a", vm["id"], "manual", prop, [], "apps from an approved gallery",
                f"{vm['name']} gets no applications from an Azure Compute Gallery, so what is installed on it "
                "is not controlled: publish the software it needs as VM Applications in a gallery that only "
                "approved publishers can write to, assign them to the VM (Extensions + applications > VM "
                "applications), and restrict extensions to an allow-list with the built-in policy."))
            continue
        # approved: galleries that live in the scanned subscriptions (under the same governance)
        subs = {s.lower() for s in inv.subscriptions}
        foreign = [a for a in apps if (rid.subscription_of(a) or "").lower() not in subs]
        names = [rid.parse(a).parent or a for a in apps]
        if foreign:
            out.findings.append(Finding(
                "vm-5a", vm["id"], "manual", prop, apps, "apps from an approved gallery",
                f"{vm['name']} installs applications from galleries outside the scanned subscriptions "
                f"({', '.join(foreign)}): confirm each publisher is approved or republish the app to your own gallery."))
        else:
            out.findings.append(Finding("vm-5a", vm["id"], "pass", prop, apps, "apps from an approved gallery",
                                        f"Applications come from {', '.join(sorted({rid.parse(n).name for n in names}))}."))
    return out


# ---- step 6: secure access ---------------------------------------------------------------------

def bastion_vnet(b: dict[str, Any]) -> str:
    for c in get_path(b, "properties.ipConfigurations") or []:
        s = get_path(c, "properties.subnet.id")
        if s:
            return rid.parse(s).parent or ""
    return ""


def neighbours(vnets: list[str], inv: Inventory) -> list[str]:
    """The VM's VNets and the VNets they reach over connected peerings (lower-cased ids)."""
    out = dict.fromkeys(v.rstrip("/").lower() for v in vnets)
    for v in vnets:
        for p in inv.children(v, PEERINGS):
            if (get_path(p, "properties.peeringState") or "Connected") == "Connected":
                remote = (get_path(p, "properties.remoteVirtualNetwork.id") or "").rstrip("/").lower()
                if remote:
                    out.setdefault(remote)
    return list(out)


def bastion_plan(vm: dict[str, Any], inv: Inventory) -> tuple[str | None, list[Change], str]:
    """(reaching Bastion's name or None, proposed creates, why none can be proposed). VMs that
    share networks share the answer, which is worked out once."""
    vnets = vm_vnet_ids(vm, inv)
    if not vnets:
        return None, [], f"{vm['name']} has no NIC in a known virtual network."
    key = ("bastion", tuple(v.lower() for v in vnets))
    name, changes, reason = memo(inv, key, lambda: _bastion_plan(vnets, inv))
    return name, copy.deepcopy(changes), reason


def _bastion_plan(vnets: list[str], inv: Inventory) -> tuple[str | None, list[Change], str]:
    near = neighbours(vnets, inv)
    for b in inv.of_type(BASTIONS):
        if bastion_vnet(b).rstrip("/").lower() in near:
            return b["name"], [], ""
    # where to put one: a peered hub (or the VM's own VNet) that has an AzureBastionSubnet
    own = {v.lower() for v in vnets}
    candidates = []
    for vid in sorted(near):
        v = inv.get(vid)
        if v is None:
            continue
        sub = next((s for s in inv.children(v["id"], SUBNETS) if s["name"].lower() == "azurebastionsubnet"), None)
        if sub is not None:
            candidates.append((vid in own, v, sub))
    if not candidates:
        hubs = [r["name"] for r in (inv.get(v) for v in sorted(near) if v not in own) if r]
        where = f"hub VNet {hubs[0]}" if hubs else f"VNet {rid.parse(vnets[0]).name}"
        return None, [], (f"Add a subnet named AzureBastionSubnet (/26 or larger) to {where}, then re-run to "
                          "deploy Bastion there; the address range is yours to choose.")
    candidates.sort(key=lambda c: c[0])  # prefer a peered hub over the VM's own VNet
    _own, vnet, subnet = candidates[0]
    rg = rid.resource_group_id(vnet["id"])
    base = vnet["name"][5:] if vnet["name"].lower().startswith("vnet-") else vnet["name"]
    pip_id = f"{rg}/providers/{PUBLIC_IPS}/pip-bas-{base}"
    bas_id = f"{rg}/providers/{BASTIONS}/bas-{base}"
    pip = remedy.create("vm-6a", pip_id, {
        "name": rid.parse(pip_id).name, "type": PUBLIC_IPS, "location": vnet.get("location"),
        "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}},
        billable=True,
        title=f"Create public IP {rid.parse(pip_id).name} for Bastion", risk="Billed per hour.")
    bas = remedy.create("vm-6a", bas_id, {
        "name": rid.parse(bas_id).name, "type": BASTIONS, "location": vnet.get("location"), "sku": {"name": "Basic"},
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": subnet["id"]}, "publicIPAddress": {"id": pip_id}}}]}},
        params={"sku": "Basic"}, billable=True,
        title=f"Deploy Azure Bastion {rid.parse(bas_id).name} in {vnet['name']}",
        risk="Billed per hour plus outbound data; deployment takes several minutes.")
    bas.depends_on = [pip.id]
    return None, [pip, bas], ""


def _eval_bastion(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-6a", VM, BASTIONS, VNETS, NICS)
    if err:
        return err
    out = CheckResult()
    for vm in _vms(inv, "vm-6a", out):
        name, changes, reason = bastion_plan(vm, inv)
        if name:
            out.findings.append(Finding("vm-6a", vm["id"], "pass", "properties.ipConfigurations", name, "reachable",
                                        f"Reachable through Bastion {name}."))
        elif changes:
            out.findings.append(Finding("vm-6a", vm["id"], "fail", "properties.ipConfigurations", None, "reachable",
                                        f"No Bastion reaches {vm['name']}'s network."))
            for c in changes:
                _add(out, c)
        else:
            out.findings.append(Finding("vm-6a", vm["id"], "manual", "properties.ipConfigurations", None,
                                        "reachable", f"No Bastion reaches {vm['name']}'s network. {reason}"))
    return out


def _bastion_deps(vm: dict[str, Any] | None, inv: Inventory) -> list[str]:
    """Closing direct access waits for the Bastion the plan would create, so admins keep a way in."""
    if vm is None:
        return []
    _name, changes, _ = bastion_plan(vm, inv)
    return [c.id for c in changes if rid.type_of(c.resource_id) == BASTIONS]


def _eval_public_ips(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-6b", NICS)
    if err:
        return err
    out = CheckResult()
    nics = inv.of_type(NICS)
    if not nics:
        out.findings.append(not_applicable("vm-6b", "network interface", inv))
        return out
    prop = "properties.ipConfigurations"
    for nic in nics:
        pips = [get_path(c, "properties.publicIPAddress.id") for c in get_path(nic, prop) or []
                if get_path(c, "properties.publicIPAddress.id")]
        if not pips:
            out.findings.append(Finding("vm-6b", nic["id"], "pass", f"{prop}.publicIPAddress", None, None,
                                        "No public IP on the interface."))
            continue
        out.findings.append(Finding("vm-6b", nic["id"], "fail", f"{prop}.publicIPAddress", pips, None,
                                    f"Interface {nic['name']} has public IP {', '.join(rid.parse(p).name for p in pips)}."))

        def mutate(body: dict[str, Any]) -> None:
            for c in get_path(body, prop) or []:
                (c.get("properties") or {}).pop("publicIPAddress", None)

        change = remedy.put_mutated("vm-6b", nic, mutate, [prop], disruptive=True,
                                    title=f"Detach the public IP from {nic['name']}",
                                    risk="Direct RDP/SSH and any internet-facing service on that IP stop; "
                                         "the public IP resource itself is kept.")
        vm = inv.get(get_path(nic, "properties.virtualMachine.id"))
        change.depends_on = _bastion_deps(vm, inv)
        out.changes.append(change)
    return out


def _eval_mgmt_ports(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-6c", VM, NSGS, NICS, VNETS)
    if err:
        return err
    out = CheckResult()
    prop = "properties.securityRules"
    for vm in _vms(inv, "vm-6c", out):
        hits = open_rules(vm, inv)
        if not hits:
            out.findings.append(Finding("vm-6c", vm["id"], "pass", prop, [], [],
                                        "No NSG rule opens 22 or 3389 to the internet."))
            continue
        desc = "; ".join(f"{rid.parse(rid.parse(r['id']).parent or '').name}/{r['name']} opens "
                         f"{', '.join(map(str, p))}" for r, p in hits)
        out.findings.append(Finding("vm-6c", vm["id"], "fail", prop, [r["id"] for r, _ in hits], [],
                                    f"Open to the internet: {desc}."))
        for rule, _ports in hits:
            change = narrow_rule("vm-6c", rule, disruptive=True,
                                 title=f"Close 22/3389 to the internet in rule {rule['name']}",
                                 risk="Direct RDP/SSH from the internet stops; use Bastion or JIT instead.")
            change = _add(out, change)
            for d in _bastion_deps(vm, inv):
                if d not in change.depends_on:
                    change.depends_on.append(d)
    return out


def _eval_entra_login(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-6d", VM, EXTENSIONS)
    if err:
        return err
    out = CheckResult()
    prop = "properties.type"
    for vm in _vms(inv, "vm-6d", out):
        ext_type = "AADLoginForWindows" if os_type(vm) == "Windows" else "AADSSHLoginForLinux"
        ext = find_extension(vm, inv, "Microsoft.Azure.ActiveDirectory", [ext_type])
        if ext is not None:
            out.findings.append(Finding("vm-6d", vm["id"], "pass", prop, ext_type, ext_type,
                                        f"{ext_type} is installed."))
            continue
        out.findings.append(Finding("vm-6d", vm["id"], "fail", prop, None, ext_type,
                                    f"{ext_type} is not installed, so sign-in cannot use Entra ID and MFA."))
        change = extension_change("vm-6d", vm, ext_type, "Microsoft.Azure.ActiveDirectory", ext_type, "1.0",
                                  title=f"Install Entra ID login ({ext_type}) on {vm['name']}",
                                  risk="Users also need a VM login role; needs outbound access to Entra ID.")
        if not has_system_identity(vm):
            change.depends_on = [change_id("vm-2c", vm["id"], "PATCH")]
        out.changes.append(change)
    return out


def _eval_conditional_access(inv: Inventory) -> CheckResult:
    out = CheckResult()
    vms = _vms(inv, "vm-6e", out)
    if vms:
        sub = inv.subscriptions[0] if inv.subscriptions else ""
        out.findings.append(Finding(
            "vm-6e", f"/subscriptions/{sub}" if sub else "", "manual", "", None, None,
            "Conditional Access lives in Entra ID, not ARM: in the Entra admin center (Protection > "
            "Conditional Access) require MFA and a compliant device for the 'Azure Windows VM Sign-In' and "
            "'Azure Linux VM Sign-In' apps, scoped to the groups holding VM login roles, and have admins "
            "connect from privileged access workstations."))
    return out


# ---- step 7: maintenance -----------------------------------------------------------------------

def _eval_antimalware(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-7a", VM, EXTENSIONS)
    if err:
        return err
    out = CheckResult()
    windows = [vm for vm in inv.of_type(VM) if os_type(vm) == "Windows"]
    if not windows:
        out.findings.append(not_applicable("vm-7a", "Windows virtual machine", inv))
        return out
    prop = "properties.autoUpgradeMinorVersion"
    for vm in windows:
        ext = find_extension(vm, inv, "Microsoft.Azure.Security", ["IaaSAntimalware"])
        mde = find_extension(vm, inv, "Microsoft.Azure.AzureDefenderForServers", ["MDE.Windows"])
        if ext is None and mde is not None:
            out.findings.append(Finding("vm-7a", vm["id"], "pass", "properties.type", "MDE.Windows", "IaaSAntimalware",
                                        "Defender for Endpoint protects the VM; a second engine is not wanted."))
            continue
        if ext is not None and get_path(ext, prop) is True:
            out.findings.append(Finding("vm-7a", vm["id"], "pass", prop, True, True,
                                        "Microsoft Antimalware is installed and updates itself."))
            continue
        if ext is not None:
            out.findings.append(Finding("vm-7a", vm["id"], "fail", prop, get_path(ext, prop), True,
                                        "Microsoft Antimalware does not update its engine automatically."))
            out.changes.append(remedy.put("vm-7a", ext, {prop: True},
                                          title=f"Let Microsoft Antimalware on {vm['name']} update itself",
                                          risk="Minor engine updates install without asking."))
            continue
        out.findings.append(Finding("vm-7a", vm["id"], "fail", "properties.type", None, "IaaSAntimalware",
                                    "No antimalware extension is installed."))
        out.changes.append(extension_change(
            "vm-7a", vm, "IaaSAntimalware", "Microsoft.Azure.Security", "IaaSAntimalware", "1.3",
            settings={"AntimalwareEnabled": True, "RealtimeProtectionEnabled": "true",
                      "ScheduledScanSettings": {"isEnabled": "true", "day": "7", "time": "120", "scanType": "Quick"}},
            title=f"Install Microsoft Antimalware on {vm['name']}",
            risk="Avoid a second antivirus engine; with Defender for Servers, MDE is the usual route."))
    return out


def _patch_setting_check(check: str, leaf: str, fix_values: dict[str, Any], defaults: dict[str, str],
                         title: str, risk: str, mcsb: str, policy: str, change_title: str) -> Check:
    def evaluate(inv: Inventory) -> CheckResult:
        out = CheckResult()
        for vm in _vms(inv, check, out):
            base = f"{os_config_path(vm)}.patchSettings"
            path = f"{base}.{leaf}"
            actual = get_path(vm, path) or defaults[os_type(vm)]
            if actual == "AutomaticByPlatform":
                out.findings.append(Finding(check, vm["id"], "pass", path, actual, "AutomaticByPlatform",
                                            f"{leaf} is AutomaticByPlatform."))
                continue
            out.findings.append(Finding(check, vm["id"], "fail", path, actual, "AutomaticByPlatform",
                                        f"{leaf} is {actual}."))
            values = {f"{base}.{k}": v for k, v in fix_values.items()}
            if check == "vm-7c" and os_type(vm) == "Windows":
                values[f"{os_config_path(vm)}.enableAutomaticUpdates"] = True
            out.changes.append(remedy.patch(check, vm, values, title=change_title.format(name=vm["name"]),
                                            risk=risk))
        return out

    return Check(id=check, title=title, remediation="auto-patch", evaluate=evaluate, resource_type=VM,
                 mcsb=mcsb, policy=policy, risk=risk)


def _eval_vm_agent(inv: Inventory) -> CheckResult:
    out = CheckResult()
    for vm in _vms(inv, "vm-7d", out):
        cfg = os_config_path(vm)
        provision = get_path(vm, f"{cfg}.provisionVMAgent")
        statuses = (get_path(vm, "properties.instanceView.vmAgent.statuses")
                    or get_path(vm, "properties.extended.instanceView.vmAgent.statuses") or [])
        shown = [s.get("displayStatus") for s in statuses]
        if provision is False:
            out.findings.append(Finding(
                "vm-7d", vm["id"], "manual", f"{cfg}.provisionVMAgent", False, True,
                f"{vm['name']} was deployed without the VM agent, so extensions and platform patching cannot "
                "run: install the Azure VM agent inside the guest (the Windows MSI or the walinuxagent package), "
                "then set osProfile provisionVMAgent = true."))
        elif statuses and "Ready" not in shown:
            out.findings.append(Finding(
                "vm-7d", vm["id"], "manual", "properties.instanceView.vmAgent.statuses", shown, ["Ready"],
                f"The VM agent on {vm['name']} reports {', '.join(map(str, shown))}: check that the guest is "
                "running, that the agent service (WindowsAzureGuestAgent / walinuxagent) is started, and that "
                "it can reach 168.63.129.16; update the agent if it is old."))
        else:
            out.findings.append(Finding("vm-7d", vm["id"], "pass", f"{cfg}.provisionVMAgent", True, True,
                                        "The VM agent is provisioned" + (" and Ready." if statuses else ".")))
    return out


# ---- step 8: Defender for Servers --------------------------------------------------------------

def servers_plan_ok(p: dict[str, Any]) -> bool:
    exts = {(e.get("name") or "").lower(): e for e in get_path(p, "properties.extensions") or []}
    agentless = exts.get("agentlessvmscanning")
    return get_path(p, "properties.pricingTier") == "Standard" and get_path(p, "properties.subPlan") == "P2" \
        and agentless is not None and is_true(agentless.get("isEnabled"))


def _eval_servers_plan(inv: Inventory) -> CheckResult:
    out = CheckResult()
    subs = list(inv.subscriptions)
    if not subs:
        out.findings.append(not_applicable("vm-8a", "subscription", inv))
        return out
    for sub in subs:
        p = pricing(inv, sub, "VirtualMachines")
        actual = {"pricingTier": get_path(p, "properties.pricingTier"), "subPlan": get_path(p, "properties.subPlan")}
        expected = {"pricingTier": "Standard", "subPlan": "P2", "AgentlessVmScanning": True}
        if servers_plan_ok(p):
            out.findings.append(Finding("vm-8a", p["id"], "pass", "properties.pricingTier", actual, expected,
                                        "Defender for Servers Plan 2 with agentless scanning is on."))
            continue
        out.findings.append(Finding("vm-8a", p["id"], "fail", "properties.pricingTier", actual, expected,
                                    f"Defender for Servers is {actual['pricingTier']}"
                                    f"{' ' + actual['subPlan'] if actual['subPlan'] else ''}; Plan 2 with "
                                    "agentless scanning is expected."))
        exts = [copy.deepcopy(e) for e in get_path(p, "properties.extensions") or []
                if (e.get("name") or "").lower() != "agentlessvmscanning"]
        exts.append({"name": "AgentlessVmScanning", "isEnabled": "True"})
        out.changes.append(remedy.put(
            "vm-8a", p, {"properties.pricingTier": "Standard", "properties.subPlan": "P2",
                         "properties.extensions": exts},
            title=f"Turn on Defender for Servers Plan 2 in subscription {sub}", billable=True,
            risk="Billed per server-hour; undo sets the plan back to Free."))
    return out


def _eval_mde(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-8b", SETTINGS)
    if err:
        return err
    out = CheckResult()
    subs = list(inv.subscriptions)
    if not subs:
        out.findings.append(not_applicable("vm-8b", "subscription", inv))
        return out
    for sub in subs:
        sid = f"/subscriptions/{sub}/providers/{SETTINGS}/WDATP"
        setting = inv.get(sid)
        actual = get_path(setting or {}, "properties.enabled")
        if actual is True:
            out.findings.append(Finding("vm-8b", sid, "pass", "properties.enabled", True, True,
                                        "Defender for Endpoint integration is on."))
            continue
        out.findings.append(Finding("vm-8b", sid, "fail", "properties.enabled", actual, True,
                                    "Defender for Endpoint integration is off."))
        res = setting or {"id": sid, "name": "WDATP", "type": SETTINGS, "kind": "DataExportSettings",
                          "properties": {}}
        values: dict[str, Any] = {"properties.enabled": True}
        if not res.get("kind"):
            values["kind"] = "DataExportSettings"
        out.changes.append(remedy.put("vm-8b", res, values, billable=True,
                                      title=f"Turn on Defender for Endpoint integration in subscription {sub}",
                                      risk="Deploys the Defender for Endpoint agent to the machines (licensed "
                                           "through Defender for Servers)."))
    return out


def _jit_covers(policy: dict[str, Any], vm_id: str, ports: Iterable[int]) -> bool:
    for entry in get_path(policy, "properties.virtualMachines") or []:
        if rid.same(entry.get("id"), vm_id):
            numbers = {int(p.get("number", 0)) for p in entry.get("ports") or []}
            return all(p in numbers for p in ports)
    return False


def _jit_entry(vm_id: str, ports: Iterable[int]) -> dict[str, Any]:
    return {"id": vm_id, "ports": [{"number": p, "protocol": "*", "allowedSourceAddressPrefix": "*",
                                    "maxRequestAccessDuration": "PT3H"} for p in sorted(set(ports))]}


def _jit_by_rg(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for p in inv.of_type(JIT):
        index.setdefault((rid.resource_group_id(p["id"]) or "").lower(), []).append(p)
    return index


def _eval_jit(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "vm-8c", VM, JIT, NSGS, NICS, VNETS)
    if err:
        return err
    out = CheckResult()
    prop = "properties.virtualMachines"
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], list[int]]]] = {}
    for vm in _vms(inv, "vm-8c", out):
        ports = sorted({p for _r, ps in open_rules(vm, inv) for p in ps})
        rg = rid.resource_group_id(vm["id"]) or ""
        policies = memo(inv, "jit_by_rg", lambda: _jit_by_rg(inv)).get(rg.lower(), [])
        if not ports:
            out.findings.append(Finding("vm-8c", vm["id"], "pass", prop, None, None,
                                        "No management port is exposed to the internet."))
        elif any(_jit_covers(p, vm["id"], ports) for p in policies):
            out.findings.append(Finding("vm-8c", vm["id"], "pass", prop, ports, ports,
                                        "Just-in-time access covers the exposed management ports."))
        else:
            out.findings.append(Finding("vm-8c", vm["id"], "fail", prop, None, ports,
                                        f"Ports {', '.join(map(str, ports))} are exposed without just-in-time access."))
            groups.setdefault((rg, (vm.get("location") or "").lower()), []).append((vm, ports))
    for (rg, location), members in groups.items():
        sub = rid.subscription_of(rg) or ""
        plan = pricing(inv, sub, "VirtualMachines")
        deps = [] if servers_plan_ok(plan) else [change_id("vm-8a", plan["id"], "PUT")]
        existing = next((p for p in memo(inv, "jit_by_rg", lambda: _jit_by_rg(inv)).get(rg.lower(), [])
                         if (p.get("location") or rid.parse(rid.parse(p["id"]).parent or "").name).lower() == location),
                        None)
        flags = dict(disruptive=True, title=f"Protect {', '.join(vm['name'] for vm, _ in members)} with "
                                            f"just-in-time access", risk="Direct RDP/SSH stops until someone "
                                                                          "requests access through JIT.")
        if existing is not None:
            def mutate(body: dict[str, Any], members: list[tuple[dict[str, Any], list[int]]] = members) -> None:
                lst = body.setdefault("properties", {}).setdefault("virtualMachines", [])
                lst[:] = [e for e in lst if not any(rid.same(e.get("id"), vm["id"]) for vm, _ in members)]
                lst.extend(_jit_entry(vm["id"], ports) for vm, ports in members)

            change = remedy.put_mutated("vm-8c", existing, mutate, [prop], **flags)
        else:
            jid = f"{rg}/providers/Microsoft.Security/locations/{location}/{JIT.rsplit('/', 1)[-1]}/default"
            change = remedy.create("vm-8c", jid, {
                "name": "default", "type": JIT, "kind": "Basic", "location": location,
                "properties": {"virtualMachines": [_jit_entry(vm["id"], ports) for vm, ports in members]}},
                params={"maxRequestAccessDuration": "PT3H"}, **flags)
        change.depends_on = deps
        out.changes.append(change)
    return out


def _eval_assessments(inv: Inventory) -> CheckResult:
    """Defender's own verdicts on the VM; advisory, since each one has its own remediation."""
    err = unreadable(inv, "vm-8d", VM, ASSESSMENTS)
    if err:
        return err
    out = CheckResult()
    prop = "properties.status.code"
    for vm in _vms(inv, "vm-8d", out):
        found = [a for a in inv.children(vm["id"], ASSESSMENTS)]
        if not found:
            out.findings.append(Finding(
                "vm-8d", vm["id"], "manual", prop, None, "Healthy",
                f"Defender for Cloud has no assessments for {vm['name']}: turn on Defender for Servers (vm-8a) "
                "and give it a day to assess, then review Recommendations for the VM."))
            continue
        bad = [a for a in found if (get_path(a, prop) or "") not in ("Healthy", "NotApplicable")]
        if not bad:
            out.findings.append(Finding("vm-8d", vm["id"], "pass", prop, "Healthy", "Healthy",
                                        f"All {len(found)} Defender for Cloud assessments are healthy."))
            continue
        names = [get_path(a, "properties.displayName") or VM_ASSESSMENTS.get(a["name"].lower(), a["name"])
                 for a in bad]
        out.findings.append(Finding(
            "vm-8d", vm["id"], "manual", prop, [get_path(a, prop) for a in bad], "Healthy",
            f"Unhealthy in Defender for Cloud: {'; '.join(names)}. Open Recommendations for {vm['name']} and "
            "follow each remediation (e.g. deploy the vulnerability scanner, install missing updates)."))
    return out


STEP3_CHECKS: tuple[Check, ...] = (
    Check(id="vm-3a", title="Run as Trusted Launch", remediation="auto-patch", evaluate=_eval_trusted_launch,
          resource_type=VM, mcsb="PV-4", disruptive=True,
          policy="Virtual Machine should have TrustedLaunch enabled",
          risk="The VM is deallocated; Gen2 and a capable size and image are needed."),
    Check(id="vm-3b", title="Turn on Secure Boot", remediation="auto-patch",
          evaluate=_boot_check("vm-3b", "secureBootEnabled", "Secure Boot"), resource_type=VM, mcsb="PV-4",
          disruptive=True, policy="Secure Boot should be enabled on supported virtual machines",
          risk="Unsigned kernels or drivers will not boot."),
    Check(id="vm-3c", title="Turn on the virtual TPM", remediation="auto-patch",
          evaluate=_boot_check("vm-3c", "vTpmEnabled", "vTPM"), resource_type=VM, mcsb="PV-4", disruptive=True,
          policy="vTPM should be enabled on supported virtual machines", risk="The VM is deallocated."),
    Check(id="vm-3d", title="Install Guest Attestation", remediation="create", evaluate=_eval_attestation,
          resource_type=VM, mcsb="PV-4",
          policy="Guest Attestation extension should be installed on supported virtual machines",
          risk="Needs Trusted Launch with Secure Boot and vTPM."),
)

STEPS: list[Step] = [
    Step("vm-1", "vm", 1, "Isolate VMs in their own resource groups",
         "Resource groups are where RBAC and policy are scoped. Keeping VMs apart from shared networks and "
         "data lets you grant workload teams access without handing them the plumbing.",
         (Check(id="vm-1a", title="VMs sit in resource groups of their own", remediation="advisory",
                evaluate=_eval_isolation, resource_type=VM, mcsb="GS-2",
                risk="Moving resources can break deployments that reference them."),)),
    Step("vm-2", "vm", 2, "Grant access by role",
         "Standing owner rights on a VM are a ready-made foothold. Login roles held by groups, narrow custom "
         "roles and a managed identity keep both people and the VM itself to what they need.",
         (Check(id="vm-2a", title="VM sign-in through login roles, not standing admin", remediation="advisory",
                evaluate=_eval_vm_rbac, resource_type=VM, mcsb="PA-7, PA-2",
                policy="Audit usage of custom RBAC roles", risk="Removing access can lock people out."),
          Check(id="vm-2b", title="A narrow custom role for joining subnets", remediation="create",
                evaluate=_eval_join_role, resource_type=ROLE_DEFINITIONS, mcsb="PA-7",
                policy="Audit usage of custom RBAC roles", risk="None: a definition grants nothing until assigned."),
          property_check(
              id="vm-2c", title="Give the VM a system-assigned identity", resource_type=VM, path="identity.type",
              expected="SystemAssigned", compliant=lambda v: "systemassigned" in (v or "").lower().replace(" ", ""),
              remediation="auto-patch", fix=_identity_fix, what="virtual machine", default="None",
              risk="The new identity gets no roles by default; no restart.", mcsb="IM-3",
              policy="A managed identity should be enabled on your machines",
              change_title="Add a system-assigned identity to {name}"))),
    Step("vm-3", "vm", 3, "Protect the boot chain",
         "Rootkits and bootkits load before the OS can defend itself. Trusted Launch with Secure Boot and a "
         "virtual TPM only boots signed components and lets you attest that the boot was clean.",
         STEP3_CHECKS),
    Step("vm-4", "vm", 4, "Encrypt disks with your own keys",
         "Platform encryption protects against stolen drives, not against misuse of the platform's keys. "
         "Customer-managed keys, double encryption and encryption at host put the key under your control "
         "and cover caches and temp disks too.",
         (Check(id="vm-4a", title="A double-encryption disk encryption set exists", remediation="advisory",
                evaluate=_eval_des, resource_type=DES, mcsb="DP-4, DP-5",
                policy="Managed disks should be double encrypted with both platform-managed and customer-managed keys",
                risk="Key Vault cost; revoking the key makes the disks unusable."),
          Check(id="vm-4b", title="Disks use the double-encryption set", remediation="auto-patch",
                evaluate=_eval_disk_cmk, resource_type=DISKS, mcsb="DP-5", disruptive=True,
                policy="OS and data disks should be encrypted with a customer-managed key",
                risk="The VM must be deallocated."),
          property_check(
              id="vm-4c", title="Encrypt at host", resource_type=VM, path="properties.securityProfile.encryptionAtHost",
              expected=True, default=False, remediation="auto-patch", what="virtual machine", disruptive=True,
              fix={"properties.securityProfile.encryptionAtHost": True},
              risk="The VM is deallocated; the subscription needs the EncryptionAtHost feature and the size "
                   "must support it; not combinable with Azure Disk Encryption.",
              mcsb="DP-4", policy="Virtual machines and virtual machine scale sets should have encryption at host enabled",
              change_title="Turn on encryption at host for {name} (deallocates it)"),
          Check(id="vm-4d", title="Disks cannot be exported publicly", remediation="auto-patch",
                evaluate=_eval_disk_network, resource_type=DISKS, mcsb="NS-2",
                policy="Managed disks should disable public network access",
                risk="Disk export and SAS download workflows stop."))),
    Step("vm-5", "vm", 5, "Control the applications installed",
         "Unvetted software is the usual way malware lands on a server. Shipping apps through a governed "
         "compute gallery makes what runs on each VM a reviewed, repeatable choice.",
         (Check(id="vm-5a", title="Applications come from an approved gallery", remediation="advisory",
                evaluate=_eval_gallery_apps, resource_type=VM, mcsb="AM-5",
                risk="Installing applications changes the guest."),)),
    Step("vm-6", "vm", 6, "Secure administrative access",
         "RDP and SSH open to the internet are scanned and brute-forced within minutes. A Bastion broker, "
         "Entra sign-in with MFA and no public IPs leave attackers nothing to knock on.",
         (Check(id="vm-6a", title="Bastion reaches the VM", remediation="create", evaluate=_eval_bastion,
                resource_type=VM, mcsb="NS-3", billable=True, risk="Billed per hour; needs a /26 subnet."),
          Check(id="vm-6b", title="No public IP on VM interfaces", remediation="auto-put", evaluate=_eval_public_ips,
                resource_type=NICS, mcsb="NS-1", disruptive=True,
                policy="Network interfaces should not have public IPs",
                risk="Direct inbound access over that IP stops."),
          Check(id="vm-6c", title="Management ports closed to the internet", remediation="auto-put",
                evaluate=_eval_mgmt_ports, resource_type=VM, mcsb="NS-3", disruptive=True,
                policy="Management ports should be closed on your virtual machines",
                risk="Cuts current admin access; have Bastion or JIT first."),
          Check(id="vm-6d", title="Sign in with Entra ID", remediation="create", evaluate=_eval_entra_login,
                resource_type=VM, mcsb="IM-1",
                risk="Needs a system identity, a supported OS and a VM login role."),
          Check(id="vm-6e", title="MFA and Conditional Access for VM sign-in", remediation="advisory",
                evaluate=_eval_conditional_access, resource_type=VM, mcsb="IM-6, IM-7, PA-6",
                risk="Needs Entra ID P1."))),
    Step("vm-7", "vm", 7, "Keep VMs maintained",
         "Unpatched software and missing antimalware are the cheapest way in. Platform-orchestrated patching "
         "and a healthy agent keep every VM current without relying on someone remembering.",
         (Check(id="vm-7a", title="Antimalware on Windows VMs", remediation="create", evaluate=_eval_antimalware,
                resource_type=VM, mcsb="ES-2, ES-3",
                policy="Microsoft IaaSAntimalware extension should be deployed on Windows servers",
                risk="Avoid running two antivirus engines."),
          _patch_setting_check("vm-7b", "assessmentMode", {"assessmentMode": "AutomaticByPlatform"},
                               {"Windows": "ImageDefault", "Linux": "ImageDefault"},
                               "Check for missing updates periodically", "Assessment only; nothing is installed.",
                               "PV-6", "Machines should be configured to periodically check for missing system updates",
                               "Assess missing updates on {name} periodically"),
          _patch_setting_check("vm-7c", "patchMode",
                               {"patchMode": "AutomaticByPlatform",
                                "automaticByPlatformSettings.rebootSetting": "IfRequired"},
                               {"Windows": "AutomaticByOS", "Linux": "ImageDefault"},
                               "Install updates through the platform",
                               "Updates install automatically and may reboot the VM when required.",
                               "PV-6", "System updates should be installed on your machines",
                               "Let the platform patch {name}"),
          Check(id="vm-7d", title="The VM agent is provisioned and ready", remediation="advisory",
                evaluate=_eval_vm_agent, resource_type=VM, mcsb="PV-4", risk="None: read-only health."))),
    Step("vm-8", "vm", 8, "Detect threats with Defender for Servers",
         "Hardening lowers the odds; detection catches what gets through. Defender for Servers adds endpoint "
         "detection, vulnerability scanning and just-in-time access to management ports.",
         (Check(id="vm-8a", title="Turn on Defender for Servers Plan 2", remediation="auto-put",
                evaluate=_eval_servers_plan, resource_type=PRICINGS, mcsb="LT-1, LT-2, ES-1", billable=True,
                policy="Azure Defender for servers should be enabled", risk="Billed per server-hour."),
          Check(id="vm-8b", title="Integrate Defender for Endpoint", remediation="auto-put", evaluate=_eval_mde,
                resource_type=SETTINGS, mcsb="ES-1", billable=True,
                policy="Configure Microsoft Defender for Endpoint integration settings with Microsoft Defender for Cloud",
                risk="Deploys the MDE agent to machines."),
          Check(id="vm-8c", title="Just-in-time access for exposed management ports", remediation="create",
                evaluate=_eval_jit, resource_type=VM, mcsb="NS-3, PA-2", disruptive=True,
                policy="Management ports of virtual machines should be protected with just-in-time network access control",
                risk="Direct access stops until a JIT request is approved."),
          Check(id="vm-8d", title="Defender for Cloud assessments are healthy", remediation="advisory",
                evaluate=_eval_assessments, resource_type=VM, mcsb="PV-5",
                policy="A vulnerability assessment solution should be enabled on your virtual machines",
                risk="None: read-only."))),
]
