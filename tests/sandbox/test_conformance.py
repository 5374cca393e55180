"""Conformance against something no one here wrote: the request/response examples of
Azure/azure-rest-api-specs (vendored under tests/data/rest-examples/, sources and the table of
the operations the wizard sends in SOURCES.md), replayed against the sandbox.

For each example (a case is keyed by its file, `file@variant` when one example is replayed onto
two resource types the wizard uses): its request (method and path of the operation, the example's
parameters with its subscription swapped for ours, its body as published) goes through
ResourceManagementClient's real HTTP pipeline into the sandbox, with the resources it needs placed
in the estate first (for a read, the documented resource itself; for a list, its documented
items). Compared with the documented answer:
* the status is one the example documents (a create answers 201 where 201 is documented);
* a documented 201/202 that carries Azure-AsyncOperation or Location headers is answered with the
  same LRO headers, and the monitor then reports success;
* the response shape: every key path of the documented body is present with the same JSON type
  (`rest_examples.shape_gaps`). GAPS lists, per example, what the sandbox does not produce
  (provider-computed values it does not model), so a new gap and a closed one both fail;
* values: the id, and every value the request set comes back unchanged on a read afterwards;
* the body's properties the sandbox ignores as read-only or unknown are exactly IGNORED lists.
Values the sandbox controls (etag, provisioningState while an LRO runs, resourceGuid, timestamps)
are not compared. An example the sandbox cannot answer as documented is `xfail(strict=True)`
naming the gap.

The last tests keep SOURCES.md's table of the operations the wizard sends true: a full plan, apply
and undo of the reference estate (and an inventory without Resource Graph) must send none it does
not list, and each example it names must replay that operation at that api-version."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_examples import DATA, MISSING, Replayer, at, leaves, load, localise, operation_of, shape_gaps

from ztwizard import resource_id as rid
from ztwizard.gateway import API_VERSIONS, MANAGEMENT_GROUPS_API, api_version_for
from ztwizard.sandbox import Sandbox

SUB = "00000000-0000-0000-0000-0000000000c3"
RGP = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers"
NET, CMP = f"{RGP}/Microsoft.Network", f"{RGP}/Microsoft.Compute"
STG = f"{RGP}/Microsoft.Storage/storageAccounts/{{accountName}}"
LRO_HEADERS = {"azure-asyncoperation", "location"}
# The power state a VM action leaves in the VM's instance view.
POWER_AFTER = {"deallocate": "PowerState/deallocated", "start": "PowerState/running",
               "poweroff": "PowerState/stopped"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # the operation's path, with the example's parameter names
    body: str | None = None  # the example parameter that is the request body
    needs: tuple[tuple[str, dict[str, Any]], ...] = ()  # (path template, entry) placed first
    seed: bool = False  # the documented resource exists (the documented 200 body, placed first)
    version: str | None = None  # the wizard's api-version when it is not the resource's
    params: dict[str, str] = field(default_factory=dict)  # parameters the example leaves unusable
    example_sub: str | None = None  # the example's subscription when it has no subscriptionId
    exists: bool = False  # ARM answers for it although no one created it (a Defender plan)
    items: str | None = None  # where the documented items of a list are placed ({item}: the name)
    query: tuple[str, ...] = ()  # example parameters that go in the query string ($filter)


def _vm(location: str = "westus") -> dict[str, Any]:
    return {"location": location, "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}}}


def _loc(location: str = "westus", **props: Any) -> dict[str, Any]:
    return {"location": location, "properties": props}


VM = f"{CMP}/virtualMachines/{{vmName}}"
ACCOUNT = (STG, {"location": "eastus2", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
# The account the storage PATCH examples answer for: its keys rotated (their SAS policy needs that)
ROTATED = (STG, {"location": "eastus2", "kind": "Storage", "sku": {"name": "Standard_GRS", "tier": "Standard"},
                 "properties": {"supportsHttpsTrafficOnly": False,
                                "keyCreationTime": {"key1": "2021-03-18T04:42:22.4322836Z",
                                                    "key2": "2021-03-18T04:42:22.4322836Z"}}})
NSG = f"{NET}/networkSecurityGroups/{{networkSecurityGroupName}}"
WATCHER = f"{NET}/networkWatchers/{{networkWatcherName}}"
JIT = f"{RGP}/Microsoft.Security/locations/{{ascLocation}}/jitNetworkAccessPolicies/{{jitNetworkAccessPolicyName}}"
ROUTES, BASTION = f"{NET}/routeTables/{{routeTableName}}", f"{NET}/bastionHosts/{{bastionHostName}}"
SUB_DIAG = "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/diagnosticSettings"
VNET16 = {"location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}

# What the wizard sets diagnostic settings on (the example's own target, a Logic App, is not one).
DIAGNOSED = (
    ("publicIPAddresses", "/subscriptions/{subscriptionId}/resourceGroups/rg-diag/providers/Microsoft.Network/"
                          "publicIPAddresses/pip-diag",
     {"location": "westus", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}}),
    ("azureFirewalls", "/subscriptions/{subscriptionId}/resourceGroups/rg-diag/providers/Microsoft.Network/"
                       "azureFirewalls/fw-diag",
     {"location": "westus", "properties": {"sku": {"name": "AZFW_VNet", "tier": "Premium"}}}),
)

CASES: dict[str, Case] = {
    # ---- Microsoft.Compute ------------------------------------------------------------------
    "compute/VirtualMachine_Get.json": Case("GET", VM, seed=True),
    "compute/VirtualMachine_Deallocate_MinimumSet_Gen.json":
        Case("POST", f"{VM}/deallocate", needs=((VM, _vm()),)),
    "compute/VirtualMachine_Start_MinimumSet_Gen.json":  # a deallocated VM, so that start has work to do
        Case("POST", f"{VM}/start", needs=((VM, {**_vm(), "properties": {
            **_vm()["properties"], "instanceView": {"statuses": [{"code": "PowerState/deallocated"}]}}}),)),
    "compute/VirtualMachine_PowerOff_MinimumSet_Gen.json": Case("POST", f"{VM}/powerOff", needs=((VM, _vm()),)),
    "compute/VirtualMachine_Get_InstanceView.json": Case("GET", f"{VM}/instanceView", needs=((VM, _vm()),)),
    "compute/VirtualMachine_Create_WithEncryptionAtHost.json":  # the feature registered, the NIC it names in place
        Case("PUT", VM, "parameters", needs=(
            (f"{NET}/networkInterfaces/{{existing-nic-name}}", _loc()),
            ("/subscriptions/{subscriptionId}/providers/Microsoft.Features/providers/Microsoft.Compute/features/"
             "EncryptionAtHost", {"properties": {"state": "Registered"}}))),
    "compute/ListAvailableResourceSkusForARegion.json":  # the wizard filters by the VM's region
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/skus", query=("$filter",),
             version="2021-07-01"),  # the compute client's ResourceSkus api-version
    "resources/getFeature.json":  # the example's namespace is a placeholder: the feature the wizard reads
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Features/providers/"
                    "{resourceProviderNamespace}/features/{featureName}", seed=True,
             version=API_VERSIONS["microsoft.features"],
             params={"resourceProviderNamespace": "Microsoft.Compute", "featureName": "EncryptionAtHost"}),
    "keyvault/getVault.json": Case("GET", f"{RGP}/Microsoft.KeyVault/vaults/{{vaultName}}", seed=True),
    "keyvault/listKeys.json":
        Case("GET", f"{RGP}/Microsoft.KeyVault/vaults/{{vaultName}}/keys", seed=True,
             needs=((f"{RGP}/Microsoft.KeyVault/vaults/{{vaultName}}", {"location": "westus", "properties": {
                 "tenantId": "00000000-0000-0000-0000-000000000000", "sku": {"family": "A", "name": "standard"}}}),)),
    "operationalinsights/WorkspacesGet.json":
        Case("GET", f"{RGP}/Microsoft.OperationalInsights/workspaces/{{workspaceName}}", seed=True),
    "network/VirtualNetworkGatewayGet.json":
        Case("GET", f"{NET}/virtualNetworkGateways/{{virtualNetworkGatewayName}}", seed=True),
    "compute/VirtualMachineExtension_Get_MinimumSet_Gen.json":
        Case("GET", f"{VM}/extensions/{{vmExtensionName}}", seed=True, needs=((VM, _vm()),)),
    "compute/VirtualMachineExtension_CreateOrUpdate_MinimumSet_Gen.json":
        Case("PUT", f"{VM}/extensions/{{vmExtensionName}}", "extensionParameters", needs=((VM, _vm()),)),
    "compute/VirtualMachineExtension_Delete_MaximumSet_Gen.json":
        Case("DELETE", f"{VM}/extensions/{{vmExtensionName}}",
             needs=((VM, _vm()), (f"{VM}/extensions/{{vmExtensionName}}",
                                  _loc(publisher="Microsoft.Azure.Monitor", type="AzureMonitorLinuxAgent",
                                       typeHandlerVersion="1.0")))),
    "compute/VirtualMachine_Update_DetachDataDiskUsingToBeDetachedProperty.json":
        Case("PATCH", VM, "parameters", needs=(
            (f"{NET}/networkInterfaces/{{existing-nic-name}}", _loc()),
            (VM, {"location": "westus", "properties": {
                "hardwareProfile": {"vmSize": "Standard_D2_v2"},
                "storageProfile": {"imageReference": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                                                      "sku": "2016-Datacenter", "version": "latest"},
                                   "osDisk": {"name": "myVMosdisk", "createOption": "FromImage", "caching": "ReadWrite",
                                              "osType": "Windows",
                                              "managedDisk": {"storageAccountType": "Standard_LRS"}},
                                   "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1023},
                                                 {"lun": 1, "createOption": "Empty", "diskSizeGB": 1023}]},
                "osProfile": {"computerName": "myVM", "adminUsername": "{your-username}"},
                "networkProfile": {"networkInterfaces": [{"id": f"{NET}/networkInterfaces/{{existing-nic-name}}",
                                                          "properties": {"primary": True}}]}}}))),
    "compute/VirtualMachine_ListAll_MinimumSet_Gen.json":  # its items have placeholder ids: a VM of ours
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines",
             needs=((f"{CMP}/virtualMachines/vm-listed", _vm()),)),
    "compute/VirtualMachineExtension_List_MinimumSet_Gen.json":
        Case("GET", f"{VM}/extensions", needs=((VM, _vm()),)),
    "compute/Disk_ListBySubscription.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/disks", seed=True,
             example_sub="{subscriptionId}"),
    "compute/DiskEncryptionSet_ListBySubscription.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/diskEncryptionSets", seed=True,
             example_sub="{subscriptionId}"),
    "compute/Disk_Get.json": Case("GET", f"{CMP}/disks/{{diskName}}", seed=True),
    "compute/Disk_Update_AddDiskControllerTypes.json":
        Case("PATCH", f"{CMP}/disks/{{diskName}}", "disk",
             needs=((f"{CMP}/disks/{{diskName}}", {  # the documented disk, before the change
                 "location": "westus", "sku": {"name": "Standard_LRS"},
                 "properties": {"osType": "Windows", "hyperVGeneration": "V1", "diskSizeGB": 127, "creationData": {
                     "createOption": "FromImage", "imageReference": {"id": (
                         "/Subscriptions/{subscription-id}/Providers/Microsoft.Compute/Locations/westus/Publishers/"
                         "marketplacetestfirstparty/ArtifactTypes/VMImage/Offers/nvme_test_062/Skus/test_sku/"
                         "Versions/1.0.0")}}}}),)),
    # ---- Microsoft.Network ------------------------------------------------------------------
    "network/NetworkSecurityGroupGet.json": Case("GET", NSG, seed=True),
    "network/NetworkSecurityGroupCreate.json": Case("PUT", NSG, "parameters"),
    "network/NetworkSecurityGroupDelete.json": Case("DELETE", NSG, needs=((NSG, _loc()),)),
    "network/NetworkSecurityGroupRuleGet.json":
        Case("GET", f"{NSG}/securityRules/{{securityRuleName}}", seed=True, needs=((NSG, _loc()),)),
    "network/NetworkSecurityGroupRuleCreate.json":
        Case("PUT", f"{NSG}/securityRules/{{securityRuleName}}", "securityRuleParameters", needs=((NSG, _loc()),)),
    "network/NetworkSecurityGroupRuleDelete.json":
        Case("DELETE", f"{NSG}/securityRules/{{securityRuleName}}",
             needs=((NSG, _loc(securityRules=[{"name": "rule1", "properties": {
                 "priority": 130, "direction": "Inbound", "access": "Allow", "protocol": "*",
                 "sourcePortRange": "*", "destinationPortRange": "80", "sourceAddressPrefix": "*",
                 "destinationAddressPrefix": "*"}}])),)),
    "network/VirtualNetworkGet.json": Case("GET", f"{NET}/virtualNetworks/{{virtualNetworkName}}", seed=True),
    "network/NetworkInterfaceGet.json": Case("GET", f"{NET}/networkInterfaces/{{networkInterfaceName}}", seed=True),
    "network/PrivateEndpointGet.json": Case("GET", f"{NET}/privateEndpoints/{{privateEndpointName}}", seed=True),
    "network/FirewallPolicyGet.json": Case("GET", f"{NET}/firewallPolicies/{{firewallPolicyName}}", seed=True),
    "network/BastionHostGet.json": Case("GET", f"{NET}/bastionHosts/{{bastionHostName}}", seed=True),
    "network/NetworkWatcherFlowLogGet.json":
        Case("GET", f"{WATCHER}/flowLogs/{{flowLogName}}", seed=True, needs=((WATCHER, _loc("centraluseuap")),)),
    **{f"network/{file}.json": Case("GET", f"/subscriptions/{{subscriptionId}}/providers/Microsoft.Network/{kind}",
                                    seed=True)
       for file, kind in (("RouteTableListAll", "routeTables"),
                          ("ApplicationSecurityGroupListAll", "applicationSecurityGroups"),
                          ("DdosProtectionPlanListAll", "ddosProtectionPlans"),
                          ("NetworkWatcherListAll", "networkWatchers"),
                          ("PublicIpAddressListAll", "publicIPAddresses"),
                          ("VirtualNetworkListAll", "virtualNetworks"),
                          ("PrivateEndpointListAll", "privateEndpoints"),
                          ("BastionHostListBySubscription", "bastionHosts"),
                          ("FirewallPolicyListBySubscription", "firewallPolicies"),
                          ("NetworkInterfaceListAll", "networkInterfaces"),
                          ("NetworkSecurityGroupListAll", "networkSecurityGroups"),
                          ("AzureFirewallListBySubscription", "azureFirewalls"))},
    "network/VirtualNetworkGatewayList.json": Case("GET", f"{NET}/virtualNetworkGateways", seed=True),
    "network/RouteTableGet.json": Case("GET", f"{NET}/routeTables/{{routeTableName}}", seed=True),
    "network/RouteTableCreate.json": Case("PUT", f"{NET}/routeTables/{{routeTableName}}", "parameters"),
    "network/RouteTableDelete.json":
        Case("DELETE", ROUTES, needs=((ROUTES, _loc()),)),
    "network/ApplicationSecurityGroupGet.json":
        Case("GET", f"{NET}/applicationSecurityGroups/{{applicationSecurityGroupName}}", seed=True),
    "network/ApplicationSecurityGroupCreate.json":
        Case("PUT", f"{NET}/applicationSecurityGroups/{{applicationSecurityGroupName}}", "parameters"),
    "network/ApplicationSecurityGroupDelete.json":
        Case("DELETE", f"{NET}/applicationSecurityGroups/{{applicationSecurityGroupName}}",
             needs=((f"{NET}/applicationSecurityGroups/{{applicationSecurityGroupName}}", _loc()),)),
    "network/DdosProtectionPlanGet.json":
        Case("GET", f"{NET}/ddosProtectionPlans/{{ddosProtectionPlanName}}", seed=True),
    "network/DdosProtectionPlanCreate.json":
        Case("PUT", f"{NET}/ddosProtectionPlans/{{ddosProtectionPlanName}}", "parameters"),
    "network/DdosProtectionPlanDelete.json":
        Case("DELETE", f"{NET}/ddosProtectionPlans/{{ddosProtectionPlanName}}",
             needs=((f"{NET}/ddosProtectionPlans/{{ddosProtectionPlanName}}", _loc()),)),
    "network/NetworkWatcherGet.json": Case("GET", WATCHER, seed=True),
    "network/NetworkWatcherCreate.json": Case("PUT", WATCHER, "parameters"),
    "network/NetworkWatcherDelete.json": Case("DELETE", WATCHER, needs=((WATCHER, _loc()),)),
    "network/NetworkWatcherFlowLogCreate.json":
        Case("PUT", f"{WATCHER}/flowLogs/{{flowLogName}}", "parameters",
             needs=((WATCHER, _loc("centraluseuap")),
                    (f"{NET}/networkSecurityGroups/desmondcentral-nsg", _loc("centraluseuap")),
                    (f"{RGP}/Microsoft.Storage/storageAccounts/nwtest1mgvbfmqsigdxe",
                     {"location": "centraluseuap", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}))),
    "network/NetworkWatcherFlowLogDelete.json":
        Case("DELETE", f"{WATCHER}/flowLogs/{{flowLogName}}",
             needs=((WATCHER, _loc()), (f"{NET}/networkSecurityGroups/nsg-fl", _loc()),
                    (f"{WATCHER}/flowLogs/{{flowLogName}}", _loc(
                        targetResourceId=f"{NET}/networkSecurityGroups/nsg-fl", enabled=True,
                        storageId=f"{RGP}/Microsoft.Storage/storageAccounts/stfl")),
                    (f"{RGP}/Microsoft.Storage/storageAccounts/stfl",
                     {"location": "westus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}))),
    "network/VirtualNetworkCreate.json": Case("PUT", f"{NET}/virtualNetworks/{{virtualNetworkName}}", "parameters"),
    "network/SubnetGet.json":
        Case("GET", f"{NET}/virtualNetworks/{{virtualNetworkName}}/subnets/{{subnetName}}", seed=True,
             needs=((f"{NET}/virtualNetworks/{{virtualNetworkName}}", VNET16),)),
    "network/SubnetCreate.json":
        Case("PUT", f"{NET}/virtualNetworks/{{virtualNetworkName}}/subnets/{{subnetName}}", "subnetParameters",
             needs=((f"{NET}/virtualNetworks/{{virtualNetworkName}}", VNET16),)),
    "network/NetworkInterfaceCreate.json":
        Case("PUT", f"{NET}/networkInterfaces/{{networkInterfaceName}}", "parameters",
             needs=((f"{NET}/virtualNetworks/rg1-vnet", {
                 "location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["172.20.0.0/16"]},
                                                      "subnets": [{"name": "default",
                                                                   "properties": {"addressPrefix": "172.20.2.0/24"}}]}}),
                    (f"{NET}/publicIPAddresses/test-ip", {"location": "eastus", "sku": {"name": "Standard"},
                                                          "properties": {"publicIPAllocationMethod": "Static"}}))),
    "network/PublicIpAddressGet.json": Case("GET", f"{NET}/publicIPAddresses/{{publicIpAddressName}}", seed=True),
    "network/PublicIpAddressCreateDefaults.json":
        Case("PUT", f"{NET}/publicIPAddresses/{{publicIpAddressName}}", "parameters"),
    "network/PublicIpAddressDelete.json":
        Case("DELETE", f"{NET}/publicIPAddresses/{{publicIpAddressName}}",
             needs=((f"{NET}/publicIPAddresses/{{publicIpAddressName}}", _loc()),)),
    "network/PrivateEndpointCreate.json":
        Case("PUT", f"{NET}/privateEndpoints/{{privateEndpointName}}", "parameters",
             needs=((f"{NET}/virtualNetworks/myVnet", {
                 "location": "eastus2euap", "properties": {"addressSpace": {"addressPrefixes": ["192.168.0.0/16"]},
                                                           "subnets": [{"name": "mySubnet",
                                                                        "properties": {"addressPrefix": "192.168.0.0/24"}}]}}),)),
    "network/PrivateEndpointDelete.json":
        Case("DELETE", f"{NET}/privateEndpoints/{{privateEndpointName}}",
             needs=((f"{NET}/privateEndpoints/{{privateEndpointName}}", _loc("eastus")),)),
    "network/FirewallPolicyPut.json": Case("PUT", f"{NET}/firewallPolicies/{{firewallPolicyName}}", "parameters"),
    "network/FirewallPolicyDelete.json":
        Case("DELETE", f"{NET}/firewallPolicies/{{firewallPolicyName}}",
             needs=((f"{NET}/firewallPolicies/{{firewallPolicyName}}", _loc()),)),
    "network/FirewallPolicyRuleCollectionGroupList.json":
        Case("GET", f"{NET}/firewallPolicies/{{firewallPolicyName}}/ruleCollectionGroups", seed=True,
             needs=((f"{NET}/firewallPolicies/{{firewallPolicyName}}", _loc()),)),
    "network/BastionHostPut.json":
        Case("PUT", f"{NET}/bastionHosts/{{bastionHostName}}", "parameters",
             needs=((f"{NET}/virtualNetworks/vnet2", {
                 "location": "westus", "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]},
                                                      "subnets": [{"name": "BastionHostSubnet",
                                                                   "properties": {"addressPrefix": "10.2.1.0/26"}}]}}),
                    (f"{NET}/publicIPAddresses/pipName", {"location": "westus", "sku": {"name": "Standard"},
                                                          "properties": {"publicIPAllocationMethod": "Static"}}))),
    "network/BastionHostDelete.json":
        Case("DELETE", BASTION, needs=((BASTION, _loc()),)),
    "network/WafPolicyGet.json":
        Case("GET", f"{NET}/ApplicationGatewayWebApplicationFirewallPolicies/{{policyName}}", seed=True),
    "network/WafPolicyDelete.json":
        Case("DELETE", f"{NET}/ApplicationGatewayWebApplicationFirewallPolicies/{{policyName}}",
             needs=((f"{NET}/ApplicationGatewayWebApplicationFirewallPolicies/{{policyName}}", _loc()),)),
    # ---- Microsoft.Storage ------------------------------------------------------------------
    "storage/StorageAccountGetProperties.json": Case("GET", STG, seed=True),
    "storage/StorageAccountUpdateDisablePublicNetworkAccess.json": Case("PATCH", STG, "parameters", needs=(ROTATED,)),
    "storage/StorageAccountUpdateAllowedCopyScopeToAAD.json": Case("PATCH", STG, "parameters", needs=(ROTATED,)),
    "storage/StorageAccountList.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Storage/storageAccounts", seed=True),
    "storage/StorageAccountDelete.json": Case("DELETE", STG, needs=(ACCOUNT,)),
    "storage/BlobServicesPutAllowPermanentDelete.json":
        Case("PUT", f"{STG}/blobServices/{{BlobServicesName}}", "parameters", needs=(ACCOUNT,)),
    "storage/FileServicesGet.json": Case("GET", f"{STG}/fileServices/{{FileServicesName}}", needs=(ACCOUNT,)),
    "storage/FileServicesList.json": Case("GET", f"{STG}/fileServices", needs=(ACCOUNT,)),
    "storage/FileServicesPut_EnableSecureSmbFeatures.json":
        Case("PUT", f"{STG}/fileServices/{{FileServicesName}}", "parameters", needs=(ACCOUNT,)),
    "storage/BlobServicesList.json": Case("GET", f"{STG}/blobServices", seed=True, needs=(ACCOUNT,)),
    "storage/BlobContainersList.json":
        Case("GET", f"{STG}/blobServices/default/containers", seed=True, needs=(ACCOUNT,)),
    "storage/FileSharesList_ProvisionedV2.json":
        Case("GET", f"{STG}/fileServices/default/shares", seed=True, needs=(ACCOUNT,)),
    # ---- Microsoft.Security -----------------------------------------------------------------
    "security/PutPricingByName_example.json":
        Case("PUT", "/{scopeId}/providers/Microsoft.Security/pricings/{pricingName}", "pricing", exists=True,
             params={"scopeId": f"subscriptions/{SUB}"}),
    "security/GetPricingByNameDns_example.json":
        Case("GET", "/{scopeId}/providers/Microsoft.Security/pricings/{pricingName}",
             params={"scopeId": f"subscriptions/{SUB}"}),
    "security/GetSettings_example.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/settings", seed=True,
             version=api_version_for(f"/subscriptions/{SUB}/providers/Microsoft.Security/settings/x")),
    "security/GetSetting_example.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/settings/{settingName}"),
    "security/GetSetting_example.json@given":  # the same read once the setting was written
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/settings/{settingName}", seed=True),
    "security/UpdateSetting_example.json":
        Case("PUT", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/settings/{settingName}", "setting",
             exists=True),
    "security/GetDefenderForStorageSettings_example.json":
        Case("GET", "/{resourceId}/providers/Microsoft.Security/defenderForStorageSettings/{settingName}",
             seed=True, example_sub="20ff7fc3-e762-44dd-bd96-b71116dcdc23",
             needs=((f"{RGP}/Microsoft.Storage/storageAccounts/samplestorageaccount",
                     {"location": "westus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),),
             params={"resourceGroupName": "SampleRG"}),
    "security/PutDefenderForStorageSettings_example.json":
        Case("PUT", "/{resourceId}/providers/Microsoft.Security/defenderForStorageSettings/{settingName}",
             "defenderForStorageSetting", example_sub="20ff7fc3-e762-44dd-bd96-b71116dcdc23",
             needs=((f"{RGP}/Microsoft.Storage/storageAccounts/samplestorageaccount",
                     {"location": "westus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),),
             params={"resourceGroupName": "SampleRG"}),
    "security/CreateJitNetworkAccessPolicy_example.json":
        Case("PUT", JIT,
             "body", needs=((f"{CMP}/virtualMachines/vm1", _vm("westeurope")),)),
    "security/DeleteJitNetworkAccessPolicy_example.json":
        Case("DELETE", JIT,
             needs=((f"{CMP}/virtualMachines/vm1", _vm("westeurope")),
                    (JIT,
                     {"kind": "Basic", "location": "westeurope", "properties": {"virtualMachines": [
                         {"id": f"{CMP}/virtualMachines/vm1", "ports": [
                             {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*",
                              "maxRequestAccessDuration": "PT3H"}]}]}}))),
    "security/GetJitNetworkAccessPolicy_example.json":
        Case("GET", JIT,
             seed=True, needs=((f"{CMP}/virtualMachines/vm1", _vm("westeurope")),)),
    "security/ListPricings_example.json":
        Case("GET", "/{scopeId}/providers/Microsoft.Security/pricings", seed=True,
             params={"scopeId": f"subscriptions/{SUB}"}),
    "security/ListSecureScores_example.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/secureScores", seed=True,
             version=API_VERSIONS["microsoft.security/securescores"]),
    "security/ListAssessments_example.json":
        Case("GET", "/{scope}/providers/Microsoft.Security/assessments", seed=True,
             example_sub="20ff7fc3-e762-44dd-bd96-b71116dcdc23",
             version=API_VERSIONS["microsoft.security/assessments"]),
    "security/GetJitNetworkAccessPoliciesSubscription_example.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Security/jitNetworkAccessPolicies", seed=True,
             version=API_VERSIONS["microsoft.security/locations/jitnetworkaccesspolicies"]),
    # ---- Microsoft.Insights -----------------------------------------------------------------
    **{f"monitor/{file}@{kind}": Case(method, "/{resourceUri}/providers/Microsoft.Insights/diagnosticSettings" + tail,
                                      body, seed=seed, example_sub="1a66ce04-b633-4a0b-b2bc-a912ec8986a6",
                                      params={"resourceUri": target[1:].replace("{subscriptionId}", SUB)},
                                      needs=((target, entry),))
       for file, method, tail, body, seed in (("createOrUpdateDiagnosticSetting.json", "PUT", "/{name}", "parameters", False),
                                             ("getDiagnosticSetting.json", "GET", "/{name}", None, True),
                                             ("listDiagnosticSettings.json", "GET", "", None, True))
       for kind, target, entry in DIAGNOSED},
    "monitor/listSubscriptionDiagnosticSettings.json":
        Case("GET", SUB_DIAG, seed=True),
    "monitor/getSubscriptionDiagnosticSetting.json":
        Case("GET", f"{SUB_DIAG}/{{name}}", seed=True),
    "monitor/getMetricAlertSingleResource.json":
        Case("GET", f"{RGP}/Microsoft.Insights/metricAlerts/{{ruleName}}", seed=True),
    "monitor/createOrUpdateSubscriptionDiagnosticSetting.json":
        Case("PUT", f"{SUB_DIAG}/{{name}}", "parameters"),
    "monitor/createOrUpdateMetricAlertSingleResource.json":
        Case("PUT", f"{RGP}/Microsoft.Insights/metricAlerts/{{ruleName}}", "parameters",
             needs=((f"{CMP}/virtualMachines/gigwadme", _vm()),)),
    "monitor/listMetricAlert.json":  # the resource-group list's example, replayed for the subscription
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/metricAlerts", seed=True,
             items=f"{RGP}/Microsoft.Insights/metricAlerts/{{item}}"),
    "monitor/listActionGroups.json":  # the resource-group list's example, replayed for the subscription
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/actionGroups", seed=True,
             items=f"{RGP}/Microsoft.Insights/actionGroups/{{item}}"),
    "monitor/deleteMetricAlert.json":
        Case("DELETE", f"{RGP}/Microsoft.Insights/metricAlerts/{{ruleName}}",
             needs=((f"{RGP}/Microsoft.Insights/metricAlerts/{{ruleName}}", {"location": "global", "properties": {
                 "severity": 3, "enabled": True, "scopes": [], "evaluationFrequency": "PT1M", "windowSize": "PT5M",
                 "criteria": {"odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                              "allOf": []}}}),)),
    # ---- Microsoft.Authorization ------------------------------------------------------------
    "authorization/GetRoleDefinitionById.json":
        Case("GET", "/{roleId}", seed=True, example_sub="subID",
             params={"roleId": f"subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/roleDefinitionId"}),
    "authorization/RoleAssignments_Delete.json":
        Case("DELETE", "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}", seed=True,
             example_sub="a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"),
    "authorization/RoleAssignments_ListForScope.json":  # the wizard lists for its subscription scope
        Case("GET", "/{scope}/providers/Microsoft.Authorization/roleAssignments", seed=True,
             example_sub="a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"),
    "authorization/PutRoleDefinition.json":
        Case("PUT", "/{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}", "body",
             example_sub="subID", params={"scope": f"subscriptions/{SUB}"}),
    "authorization/DeleteRoleDefinition.json":
        Case("DELETE", "/{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}", seed=True,
             example_sub="subID", params={"scope": f"subscriptions/{SUB}"}),
    "policy/listPolicyAssignments.json":
        Case("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyAssignments", seed=True),
    # ---- ARM itself and Resource Graph --------------------------------------------------------
    "resources/GetSubscriptions.json": Case("GET", "/subscriptions", version="2022-12-01"),
    "managementgroups/GetDescendants.json":  # --management-group: a group the sandbox's hierarchy has
        Case("GET", "/providers/Microsoft.Management/managementGroups/{groupId}/descendants",
             version=MANAGEMENT_GROUPS_API, params={"groupId": "mg-platform"}),
    "resourcegraph/ResourcesBasicQuery.json":
        Case("POST", "/providers/Microsoft.ResourceGraph/resources", "query", version="2021-03-01",
             example_sub="cfbbd179-59d2-4052-aa06-9270a38aa9d6",
             needs=((f"{NET}/networkInterfaces/myNetworkInterface", _loc("centralus")),)),
}


# Documented response shape the sandbox does not produce: values ARM's providers compute that it
# does not model (endpoints, timestamps, generated ids and addresses, provider defaults).
GAPS: dict[str, set[str]] = {
    "compute/DiskEncryptionSet_ListBySubscription.json": {"nextLink"},
    "compute/Disk_ListBySubscription.json": {"nextLink"},
    "compute/ListAvailableResourceSkusForARegion.json": {"nextLink", "value[].locationInfo[].zoneDetails"},
    "compute/Disk_Update_AddDiskControllerTypes.json": {"sku.tier"},
    "compute/VirtualMachine_Create_WithEncryptionAtHost.json": {"properties.osProfile.secrets",
        "properties.osProfile.windowsConfiguration", "properties.storageProfile.dataDisks",
        "properties.storageProfile.osDisk.osType"},
    # the sandbox's instance view is the power and provisioning state the wizard reads
    "compute/VirtualMachine_Get_InstanceView.json": {"bootDiagnostics", "computerName", "disks", "extensions",
        "hyperVGeneration", "isVMInStandbyPool", "osName", "osVersion", "patchStatus", "platformFaultDomain",
        "platformUpdateDomain", "statuses[].time", "vmAgent.extensionHandlers", "vmAgent.statuses[].time"},
    "compute/VirtualMachine_Update_DetachDataDiskUsingToBeDetachedProperty.json": {
        "properties.osProfile.secrets", "properties.osProfile.windowsConfiguration",
        "properties.storageProfile.dataDisks[].caching",
        "properties.storageProfile.dataDisks[].managedDisk", "properties.vmId"},
    "managementgroups/GetDescendants.json": {"nextLink"},
    "network/BastionHostPut.json": {"location", "properties.disableCopyPaste", "properties.dnsName",
        "properties.enableIpConnect", "properties.enableKerberos", "properties.enablePrivateOnlyBastion",
        "properties.enableSessionRecording", "properties.enableShareableLink",
        "properties.enableTunneling", "properties.ipConfigurations[].etag",
        "properties.ipConfigurations[].id",
        "properties.ipConfigurations[].properties.privateIPAllocationMethod",
        "properties.ipConfigurations[].properties.provisioningState", "properties.ipConfigurations[].type",
        "properties.scaleUnits", "sku"},
    "network/DdosProtectionPlanCreate.json": {"properties.publicIPAddresses", "properties.virtualNetworks"},
    "network/FirewallPolicyGet.json": {"properties.ruleCollectionGroups"},
    "network/FirewallPolicyListBySubscription.json": {"value[].properties.ruleCollectionGroups"},
    "network/NetworkInterfaceCreate.json": {"properties.dnsSettings", "properties.enableIPForwarding",
        "properties.ipConfigurations[].id", "properties.ipConfigurations[].properties.primary",
        "properties.ipConfigurations[].properties.privateIPAddress",
        "properties.ipConfigurations[].properties.privateIPAddressVersion",
        "properties.ipConfigurations[].properties.privateIPAllocationMethod",
        "properties.ipConfigurations[].properties.provisioningState",
        "properties.ipConfigurations[].properties.subnet", "properties.vnetEncryptionSupported"},
    "network/NetworkSecurityGroupCreate.json": {"properties.flushConnection"},
    "network/NetworkWatcherCreate.json": {"tags"},
    "network/NetworkWatcherFlowLogCreate.json": {"properties.flowAnalyticsConfiguration",
        "properties.retentionPolicy", "properties.targetResourceGuid"},
    "network/PrivateEndpointCreate.json": {"properties.applicationSecurityGroups",
        "properties.customDnsConfigs", "properties.networkInterfaces",
        "properties.privateLinkServiceConnections[].id",
        "properties.privateLinkServiceConnections[].properties.privateLinkServiceConnectionState"},
    "network/PublicIpAddressCreateDefaults.json": {"properties.idleTimeoutInMinutes",
        "properties.ipConfiguration", "properties.publicIPAddressVersion",
        "properties.publicIPAllocationMethod", "sku"},
    "network/RouteTableCreate.json": {"properties.disableBgpRoutePropagation"},
    "resources/GetSubscriptions.json": {"nextLink", "value[].managedByTenants", "value[].tags"},
    "security/GetPricingByNameDns_example.json": {"properties.enablementTime"},
    "security/PutDefenderForStorageSettings_example.json": {"properties.malwareScanning.operationStatus",
        "properties.sensitiveDataDiscovery.operationStatus"},
    "storage/BlobContainersList.json": {"nextLink"},
    "storage/FileServicesGet.json": {"sku.tier"},
    "storage/FileServicesList.json": {"value[].sku.tier"},
    "storage/FileServicesPut_EnableSecureSmbFeatures.json": {"sku"},
    "storage/FileSharesList_ProvisionedV2.json": {"nextLink"},
    "storage/StorageAccountUpdateAllowedCopyScopeToAAD.json": {"properties.creationTime",
        "properties.encryption.services.blob.lastEnabledTime",
        "properties.encryption.services.file.lastEnabledTime", "properties.isHnsEnabled",
        "properties.networkAcls.bypass", "properties.networkAcls.ipRules",
        "properties.networkAcls.virtualNetworkRules", "properties.primaryEndpoints",
        "properties.primaryLocation", "properties.secondaryLocation", "properties.statusOfPrimary",
        "properties.statusOfSecondary", "tags"},
    "storage/StorageAccountUpdateDisablePublicNetworkAccess.json": {"properties.creationTime",
        "properties.encryption.services.blob.lastEnabledTime",
        "properties.encryption.services.file.lastEnabledTime", "properties.isHnsEnabled",
        "properties.networkAcls.bypass", "properties.networkAcls.ipRules",
        "properties.networkAcls.virtualNetworkRules", "properties.primaryEndpoints",
        "properties.primaryLocation", "properties.secondaryLocation", "properties.statusOfPrimary",
        "properties.statusOfSecondary", "tags"},
}
# Documented LRO headers the sandbox does not send (it sends Location on a 202 DELETE or action,
# both monitors on a Network 202 DELETE, Azure-AsyncOperation on a 200/201 PUT).
LRO_GAPS: dict[str, set[str]] = {
    "compute/VirtualMachineExtension_CreateOrUpdate_MinimumSet_Gen.json": {"location"},
}
# Properties of a published request body that the sandbox ignores as read-only or unknown.
IGNORED: dict[str, set[str]] = {
    # the example sends the resource's own id/name/type back, read-only in the spec
    "security/PutDefenderForStorageSettings_example.json": {"id", "name", "type"},
}
# What ARM takes but never returns.
WRITE_ONLY = {"properties.osProfile.adminPassword"}
XFAIL: dict[str, str] = {
    "authorization/PutRoleDefinition.json":
        "the published body nests the definition under 'roleDefinition' instead of 'properties'; the sandbox "
        "ignores it as unknown, creates a definition without properties and answers without them",
    "network/FirewallPolicyPut.json":
        "the 2024-07-01 example sets intrusionDetection.profile 'Balanced', outside the enum the sandbox derives "
        "from the 2026-03-01 models (Core, Emerging, Extended, Off): refused with 400 InvalidRequestFormat",
    "resourcegraph/ResourcesBasicQuery.json":
        "the sandbox's Resource Graph answers only the query shapes the wizard sends "
        "(`<table> | where … in~ (…) | order by id asc`); `project` and `limit` are refused with 400 InvalidQuery",
    "security/GetSetting_example.json":
        "the sandbox holds no Defender for Cloud setting it was not given (404); ARM answers settings/WDATP "
        "on every subscription",
}


def _fill(template: str, params: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "subscriptionId":
            return SUB
        return str(params.get(name, "rg-conformance" if name == "resourceGroupName" else f"{{{name}}}"))
    return re.sub(r"\{([^}]+)\}", one, template)


def _estate(path: str, ids_and_entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Our subscription, every resource group the request and the placed resources sit in, those resources."""
    groups = sorted({m.group(0) for i in [path, *(i for i, _ in ids_and_entries)]
                     for m in [re.match(r"/?subscriptions/[^/]+/resourceGroups/[^/]+", i, re.IGNORECASE)] if m})
    out: list[dict[str, Any]] = [{"id": f"/subscriptions/{SUB}", "type": "Microsoft.Resources/subscriptions"}]
    out += [{"id": "/" + g.lstrip("/"), "location": "westus", "type": "Microsoft.Resources/resourceGroups"}
            for g in groups]
    out += [{**copy.deepcopy(e), "id": i} for i, e in ids_and_entries]
    return out


def _version(case: Case, path: str) -> str:
    if case.version:
        return case.version
    collection = not operation_of("GET", path)[1].endswith("{name}")  # a list: its item type's version
    return api_version_for(path + "/x" if collection else path)


def _documented(example: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(k): (v or {}) for k, v in example["responses"].items() if k.isdigit()}


def _seeded(case: Case, path: str, documented: dict[int, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The documented resource (or, for a list, the documented items) as estate entries at our ids."""
    body = documented[200].get("body") or {}
    items = body["value"] if "value" in body else [body]
    out = []
    for item in items:
        entry = {k: v for k, v in item.items() if k not in ("id", "etag")}
        name = item.get("name") or item["id"].rsplit("/", 1)[1]
        if "value" not in body:
            rid = path
        elif case.items:
            rid = _fill(case.items, {"item": name})
        elif "/resourcegroups/" not in path.lower() and \
                item["id"].lower().startswith(f"/subscriptions/{SUB}/resourcegroups/"):
            rid = item["id"]  # a subscription-wide list: each item where the example says it is
        else:
            rid = f"{path}/{name}"
        out.append((rid, entry))
    return out


def _namespace(path: str) -> str:
    return rid.type_of(path).split("/")[0].lower()


def _etagged(body: Any) -> bool:
    """Whether a response body (one resource or a list of them) carries a top-level etag."""
    items = body.get("value") if isinstance(body, dict) and isinstance(body.get("value"), list) else [body]
    return any(isinstance(i, dict) and "etag" in i for i in items)


# Providers whose resources the wizard reads have no etag: none of their vendored examples shows
# one (checked below), nor do the installed SDKs' models at the api-versions sent (Security's
# 2020-01-01 to 2024-01-01, Insights' 2018-03-01 to 2023-01-01, Authorization's 2022-04-01). A
# sandbox that adds one lets a client rely on If-Match where ARM would ignore it.
ETAG_FREE = frozenset({"microsoft.security", "microsoft.insights", "microsoft.authorization"})


def _replay(name: str) -> None:
    case = CASES[name]
    example = load(name.split("@")[0])
    params = {**example["parameters"], **case.params}
    example_sub = case.example_sub or params.get("subscriptionId")
    params = localise(params, example_sub, SUB)
    documented = _documented(localise(example, example_sub, SUB))
    path = _fill(case.path, params)
    needs = [(_fill(t, params), localise(e, example_sub, SUB)) for t, e in case.needs]
    if case.seed:
        needs += _seeded(case, path, documented)
    sb = Sandbox(None, estate=_estate(path, needs), lro_seconds=0)
    arm = Replayer(sb, SUB)
    version = _version(case, path)
    body = params[case.body] if case.body else None

    status, headers, answer = arm.send(case.method, path, version, body, {q: params[q] for q in case.query})

    assert status in documented, (status, answer)
    if case.method == "PUT" and 201 in documented and not case.exists and not any(
            _fill(t, params).lower() == path.lower() for t, _ in case.needs):
        assert status == 201, "a create answers 201 where the example documents it"
    lro = {h.lower() for h in (documented[status].get("headers") or {})} & LRO_HEADERS
    if status in (201, 202):
        assert lro - set(headers) == LRO_GAPS.get(name, set()), (
            f"documented LRO headers {sorted(lro)}, sent {sorted(set(headers) & LRO_HEADERS)}")
    monitor = arm.settle(headers)
    assert not monitor or monitor[-1] in (200, 204), f"the operation did not succeed: {monitor}"

    want = documented[status].get("body")
    if want is None and status in (201, 202) and 200 in documented:
        want = documented[200].get("body")
    if case.method == "DELETE":
        assert arm.send("GET", path, version)[0] == 404, "the resource is gone once the delete is answered"
    action = path.rsplit("/", 1)[1].lower()
    if case.method == "POST" and action in POWER_AFTER:
        view = arm.send("GET", path.rsplit("/", 1)[0] + "/instanceView", version)[2]
        codes = {s.get("code") for s in (view or {}).get("statuses", [])}
        assert POWER_AFTER[action] in codes, f"{action} left the VM {sorted(c for c in codes if c)}"
    if case.method in ("PUT", "PATCH") and answer is None:
        answer = arm.send("GET", path, version)[2]
    if want is not None:
        assert isinstance(answer, dict), f"the example documents a body; the answer has none ({answer!r})"
        if want.get("value"):  # a list: its items' shape is only compared when there are some
            assert answer.get("value"), "the documented list has items, the answer none"
        if _namespace(path) in ETAG_FREE:
            assert not _etagged(answer), f"{_namespace(path)} documents no etag; the sandbox sent one"
        gaps = shape_gaps(want, answer)
        assert gaps == GAPS.get(name, set()), f"response shape differs from the example: {sorted(gaps)}"
        if "id" in answer and case.method not in ("POST",) and "value" not in answer:
            assert answer["id"].lower() == path.lower()
    if case.method in ("PUT", "PATCH"):
        final = arm.send("GET", path, version)[2]
        sent = {p: v for p, v in leaves((body or {}).get("properties") or {}, ("properties",)).items()
                if v is not None and v != {} and ".".join(p) not in WRITE_ONLY}
        changed = {".".join(p): (v, at(final, p)) for p, v in sent.items()
                   if at(final, p) is MISSING or at(final, p) != v}
        assert not changed, f"sent values that did not come back: {changed}"
    if body is not None:
        seen = {p for (_t, p) in sb.schema_stats.read_only} | {p for (_t, p) in sb.schema_stats.unknown}
        assert seen == IGNORED.get(name, set()), f"body properties the sandbox ignored: {sorted(seen)}"


def _param(name: str) -> Any:
    reason = XFAIL.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in sorted(CASES)])
def test_sandbox_answers_the_documented_example(name: str) -> None:
    _replay(name)


def test_no_example_of_an_etag_free_provider_shows_an_etag() -> None:
    cases = [n for n, case in CASES.items() if _namespace(case.path) in ETAG_FREE]
    assert len({_namespace(CASES[n].path) for n in cases}) == len(ETAG_FREE)
    for name in cases:
        example = load(name.split("@")[0])
        assert not any(_etagged((r or {}).get("body")) for r in example["responses"].values()), name


def test_every_vendored_example_is_replayed_and_listed_in_sources() -> None:
    files = {str(p.relative_to(DATA)) for p in DATA.rglob("*.json")}
    assert files == {n.split("@")[0] for n in CASES}
    sources = (DATA / "SOURCES.md").read_text()
    assert all(f"| {f} |" in sources for f in files)


def test_operation_patterns_name_the_resource_not_its_instance() -> None:
    a = operation_of("GET", "https://h/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/"
                            "networkSecurityGroups/nsg-1/securityRules/r?api-version=2026-03-01")
    b = operation_of("get", "https://h/subscriptions/s2/resourcegroups/other/providers/Microsoft.Network/"
                            "networkSecurityGroups/nsg-2/securityRules/x?api-version=2026-03-01")
    assert a == b == ("GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
                             "Microsoft.Network/networkSecurityGroups/{name}/securityRules/{name}", "2026-03-01")
    action = operation_of("POST", "https://h/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
                                  "virtualMachines/vm/deallocate?api-version=2026-04-01")
    assert action[1].endswith("/virtualMachines/{name}/deallocate")
    assert operation_of("GET", "https://h/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/"
                               "storageAccounts/st/fileServices?api-version=1")[1].endswith("/storageAccounts/{name}/fileServices")


# ---- the operations the wizard sends, and SOURCES.md's table of them ---------------------------

OPERATION_ROW = re.compile(r"^\| (GET|PUT|PATCH|DELETE|POST) \| `([^`]+)` \| ([^ |]+) \| ([^|]+) \| ([^|]+) \|$", re.M)


class _Requests(logging.Handler):
    """The gateway's DEBUG line for every request ARM answered: `METHOD URL -> status`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sent: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        parts = record.getMessage().split(" ")
        if len(parts) == 4 and parts[2] == "->":
            self.sent.append((parts[0], parts[1]))


@pytest.fixture(scope="module")
def sent_operations(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, str]]:
    """What a full plan, apply (disruptive and billable changes allowed) and undo of the reference
    estate send to ARM, and an inventory without Resource Graph, as operations; the sandbox's own
    LRO monitors left out."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.target import in_process_target
    from ztwizard.undo import undo_changes

    logger, handler = logging.getLogger("ztwizard.gateway"), _Requests()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    journal = Journal(tmp_path_factory.mktemp("operations") / "state")
    try:
        gw = Gateway(in_process_target(Sandbox(None, estate="reference", lro_seconds=0)))
        changes = inspect(gw).changes()
        sid = start_session(journal, gw, changes)
        # what is sent counts here, not whether every change lands (other tests judge that)
        report = apply_changes(gw, journal, sid, changes, allow_disruptive=True, allow_cost=True)
        assert len(report.applied) > 50, "\n".join(report.lines())
        undo_changes(gw, journal, sid)
        # the typed list calls the inventory makes when Resource Graph is unavailable
        assert not gw.inventory(use_graph=False).unreadable
    finally:
        journal.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
    ops = {operation_of(m, u) for m, u in handler.sent}
    return {op for op in ops if not op[1].startswith("/sandbox/")}


def _case_operation(name: str) -> tuple[str, str, str]:
    case = CASES[name]
    params = {**load(name.split("@")[0])["parameters"], **case.params}
    params = localise(params, case.example_sub or params.get("subscriptionId"), SUB)
    path = _fill(case.path, params)
    return operation_of(case.method, f"https://h{path}?api-version={_version(case, path)}")


def _table() -> dict[tuple[str, str, str], list[str]]:
    rows = OPERATION_ROW.findall((DATA / "SOURCES.md").read_text())
    return {(m, p, v): [] if files.startswith("no example") else [f.strip() for f in files.split(",")]
            for m, p, v, _n, files in rows}


def test_sources_lists_every_operation_the_wizard_sends(sent_operations: set[tuple[str, str, str]]) -> None:
    table = _table()
    assert len(sent_operations) > 60
    missing = sorted(op for op in sent_operations if op not in table)
    assert not missing, f"operations the wizard sends that SOURCES.md does not list: {missing}"


def test_each_listed_example_replays_the_operation_of_its_row() -> None:
    by_file: dict[str, set[tuple[str, str, str]]] = {}
    for name in CASES:
        by_file.setdefault(name.split("@")[0], set()).add(_case_operation(name))
    covered = 0
    for (method, pattern, version), files in _table().items():
        for f in files:
            covered += 1
            ops = {(m, p.lower()) for m, p, v in by_file.get(f, set()) if v == version}
            assert (method, pattern.lower()) in ops, f"{f} does not replay {method} {pattern} at {version}"
    assert covered > 60
