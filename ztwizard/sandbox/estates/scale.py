"""`scale:N`: a generated estate of exactly N resources, for benchmarks and paging tests.

Resources come in small application blocks (an NSG with rules, a VNet with subnets, a public IP,
a NIC, a disk, a VM with an extension, a storage account, now and then with containers or file
shares), spread round-robin over at least 20 subscriptions, each with a home region and a few
secondary ones, the way a management group of landing zones looks. Every reference points backwards in the stream, so any prefix
is self-consistent and N can be cut anywhere. Settings vary with the block number, so checks see
a mix of passes and failures; nothing is random, so the same N always gives the same estate."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

from .reference import _nsg, _public_ip, _resource, _rule, _subnet, _vnet, guid

Resource = dict[str, Any]

_NS = uuid.UUID("9d7c2b1e-4f3a-4e8d-b6a5-1c0f2e3d4b5a")
REGIONS = ("westeurope", "northeurope", "eastus2", "swedencentral", "centralus", "uksouth")
BLOCKS_PER_GROUP = 4


def subscription_ids(count: int) -> list[str]:
    return [str(uuid.uuid5(_NS, f"subscription|{i}")) for i in range(count)]


def subscription_count(n: int) -> int:
    """At least 20 subscriptions, more for bigger estates (up to 40)."""
    return max(20, min(40, n // 2500))


def build(n: int) -> list[Resource]:
    """Exactly `n` resources (n >= 1)."""
    return list(itertools.islice(_stream(subscription_count(n)), n))


def _stream(n_subs: int) -> Iterator[Resource]:
    subs = subscription_ids(n_subs)
    for block in itertools.count():
        sub = subs[block % n_subs]
        local = block // n_subs  # block number within its subscription
        if local == 0:
            yield from _subscription_scope(sub)
        group_no = local // BLOCKS_PER_GROUP
        # two groups in three in the subscription's home region, the others in one of two more
        offset = (0, 0, 1 + group_no % 2)[group_no % 3]
        region = REGIONS[(block % n_subs + offset) % len(REGIONS)]
        rg = f"/subscriptions/{sub}/resourceGroups/rg-app{group_no:04d}"
        if local % BLOCKS_PER_GROUP == 0:
            yield _resource(rg, "Microsoft.Resources/resourceGroups", {}, location=region,
                            tags={"workload": f"app{group_no:04d}"}, etag=False)
        yield from _block(rg, region, block, local)


def _subscription_scope(sub: str) -> Iterator[Resource]:
    for name in ("VirtualMachines", "StorageAccounts", "CloudPosture"):
        yield _resource(f"/subscriptions/{sub}/providers/Microsoft.Security/pricings/{name}",
                        "Microsoft.Security/pricings", {"pricingTier": "Free", "freeTrialRemainingTime": "PT0S"},
                        location=None, etag=False, provisioning=False)


def _block(rg: str, region: str, block: int, local: int) -> Iterator[Resource]:
    net = f"{rg}/providers/Microsoft.Network"
    tag = {"block": str(block)}
    octet = local % 250
    prefix = f"10.{octet}.0.0/16"
    name = f"b{local:05d}"

    nsg = f"{net}/networkSecurityGroups/nsg-{name}"
    yield _nsg(nsg, tag) | {"location": region}
    yield _rule(nsg, "AllowHttpsInbound", 100, "Inbound", "Allow", "Tcp", src="Internet", port="443")
    yield _rule(nsg, "AllowRdp" if block % 2 else "AllowSsh", 200, "Inbound", "Allow", "Tcp",
                src="*" if block % 3 == 0 else "10.0.0.0/8", port="3389" if block % 2 else "22")
    yield _rule(nsg, "DenyAllInbound", 4096, "Inbound", "Deny", "*")

    vnet = f"{net}/virtualNetworks/vnet-{name}"
    yield _vnet(vnet, prefix, tag) | {"location": region}
    web = f"{vnet}/subnets/snet-web"
    yield _subnet(web, f"10.{octet}.1.0/24", nsg=nsg, service_endpoints=["Microsoft.Storage"] if block % 4 == 0 else None)
    yield _subnet(f"{vnet}/subnets/snet-data", f"10.{octet}.2.0/24", nsg=nsg if block % 5 else None)

    nic = f"{net}/networkInterfaces/nic-vm-{name}"
    pip = f"{net}/publicIPAddresses/pip-vm-{name}"
    with_pip = block % 7 == 0
    if with_pip:
        yield _public_ip(pip, f"20.{50 + block % 150}.{(block // 150) % 256}.{block % 250 + 1}", zones=["1"],
                         tags=tag, ip_configuration=None) | {"location": region}
    ipconfig: dict[str, Any] = {"provisioningState": "Succeeded", "privateIPAddress": f"10.{octet}.1.4",
                                "privateIPAllocationMethod": "Dynamic", "subnet": {"id": web}, "primary": True,
                                "privateIPAddressVersion": "IPv4"}
    if with_pip:
        ipconfig["publicIPAddress"] = {"id": pip}
    yield _resource(nic, "Microsoft.Network/networkInterfaces", {
        "ipConfigurations": [{"name": "ipconfig1", "id": f"{nic}/ipConfigurations/ipconfig1",
                              "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                              "properties": ipconfig}],
        "enableIPForwarding": False, "enableAcceleratedNetworking": True, "primary": True,
        "nicType": "Standard"}, location=region, tags=tag, kind="Regular")

    vm = f"{rg}/providers/Microsoft.Compute/virtualMachines/vm-{name}"
    linux = block % 2 == 0
    disk = f"{rg}/providers/Microsoft.Compute/disks/vm-{name}_OsDisk_1"
    yield _resource(disk, "Microsoft.Compute/disks", {
        "osType": "Linux" if linux else "Windows", "hyperVGeneration": "V2",
        "creationData": {"createOption": "FromImage"}, "diskSizeGB": 64 if linux else 127,
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "DenyAll" if block % 6 == 0 else "AllowAll",
        "publicNetworkAccess": "Disabled" if block % 6 == 0 else "Enabled", "diskState": "Attached",
    }, location=region, tags=tag, etag=False, managedBy=vm, sku={"name": "Premium_LRS", "tier": "Premium"})
    trusted = block % 5 == 0
    patch = {"patchMode": "AutomaticByPlatform" if block % 3 == 0 else "ImageDefault",
             "assessmentMode": "AutomaticByPlatform" if block % 3 == 0 else "ImageDefault"}
    os_config = ({"linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True,
                                         "patchSettings": patch}} if linux else
                 {"windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True,
                                           "patchSettings": patch | (
                                               {} if block % 3 == 0 else {"patchMode": "AutomaticByOS"})}})
    props: dict[str, Any] = {
        "vmId": guid("vmid", vm.lower()),
        "hardwareProfile": {"vmSize": ("Standard_D2s_v5", "Standard_B2ms", "Standard_E4ds_v5")[block % 3]},
        "storageProfile": {
            "imageReference": ({"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                                "sku": "22_04-lts-gen2", "version": "latest"} if linux else
                               {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                                "sku": "2022-datacenter-azure-edition", "version": "latest"}),
            "osDisk": {"osType": "Linux" if linux else "Windows", "name": disk.rsplit("/", 1)[-1],
                       "createOption": "FromImage", "caching": "ReadWrite",
                       "managedDisk": {"storageAccountType": "Premium_LRS", "id": disk}},
            "dataDisks": []},
        "osProfile": {"computerName": f"vm-{name}", "adminUsername": "azureadmin", **os_config,
                      "secrets": [], "allowExtensionOperations": True},
        "networkProfile": {"networkInterfaces": [{"id": nic}]},
    }
    if trusted:
        props["securityProfile"] = {"uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
                                    "securityType": "TrustedLaunch"}
    yield _resource(vm, "Microsoft.Compute/virtualMachines", props, location=region, tags=tag,
                    identity={"type": "SystemAssigned"} if block % 4 == 1 else None)
    ext = ("AzureMonitorLinuxAgent", "Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent") if linux else \
        ("IaaSAntimalware", "Microsoft.Azure.Security", "IaaSAntimalware")
    yield _resource(f"{vm}/extensions/{ext[0]}", "Microsoft.Compute/virtualMachines/extensions", {
        "publisher": ext[1], "type": ext[2], "typeHandlerVersion": "1.0", "autoUpgradeMinorVersion": True},
        location=region, etag=False)

    account_name = f"st{guid(rg.lower(), name).replace('-', '')[:16]}{local % 100:02d}"
    account = f"{rg}/providers/Microsoft.Storage/storageAccounts/{account_name}"
    acct_props: dict[str, Any] = {
        "supportsHttpsTrafficOnly": block % 8 != 0,
        "allowBlobPublicAccess": block % 3 == 0,
        "publicNetworkAccess": "Enabled",
        "networkAcls": {"bypass": "AzureServices", "virtualNetworkRules": [], "ipRules": [],
                        "defaultAction": "Deny" if block % 4 == 0 else "Allow"},
        "encryption": {"keySource": "Microsoft.Storage",
                       "services": {"blob": {"enabled": True, "keyType": "Account"}}},
        "primaryEndpoints": {"blob": f"https://{account_name}.blob.core.windows.net/"},
        "primaryLocation": region, "statusOfPrimary": "available",
        "creationTime": "2024-01-01T00:00:00.0000000Z", "accessTier": "Hot",
    }
    if block % 2:
        acct_props["minimumTlsVersion"] = "TLS1_2"
    if block % 3 == 1:
        acct_props["allowSharedKeyAccess"] = False
    yield _resource(account, "Microsoft.Storage/storageAccounts", acct_props, location=region, tags=tag,
                    etag=False, sku={"name": "Standard_LRS", "tier": "Standard"}, kind="StorageV2")
    yield _resource(f"{account}/blobServices/default", "Microsoft.Storage/storageAccounts/blobServices",
                    {"deleteRetentionPolicy": {"enabled": False}, "cors": {"corsRules": []}},
                    location=None, etag=False, provisioning=False)
    if block % 3 == 0:  # anonymous access allowed: some accounts really serve a public container
        yield _resource(f"{account}/blobServices/default/containers/assets",
                        "Microsoft.Storage/storageAccounts/blobServices/containers",
                        {"publicAccess": "Blob" if block % 6 == 0 else "None"}, location=None, provisioning=False)
    if block % 5 == 2:  # an Azure Files user
        files = f"{account}/fileServices/default"
        yield _resource(files, "Microsoft.Storage/storageAccounts/fileServices",
                        {"shareDeleteRetentionPolicy": {"enabled": True, "days": 7}}, location=None, etag=False,
                        provisioning=False)
        yield _resource(f"{files}/shares/profiles", "Microsoft.Storage/storageAccounts/fileServices/shares",
                        {"shareQuota": 100, "enabledProtocols": "SMB"}, location=None, provisioning=False)
