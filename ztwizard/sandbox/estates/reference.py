"""The reference estate: the overview article's hub-and-spoke landing zone, just lifted and shifted.

Two subscriptions in one tenant. The workload subscription holds a storage group (one account
for blobs, one for Azure Files), a VM group with a three-tier app (Windows front end, Linux
application tier, SQL Server data tier, with NICs, managed disks and extensions) and a spoke
network group (spoke VNet, NSGs, a route table, an Application Gateway). The connectivity
subscription holds the hub: Azure Firewall Standard with its policy, a VPN gateway, public IPs,
and the peering to the spoke. Defender plans, role assignments, policy assignments and
activity-log settings sit at subscription scope.

The state is what a migration typically leaves behind, so that every one of the 23 steps has
something to fix, and a few things are already right, so that the wizard shows passes too. The
shapes are those ARM GET returns (camelCase wire JSON), children as entries of their own. Every
GUID is derived with uuid5, so the estate is the same on every build."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

Resource = dict[str, Any]

TENANT_ID = "5d8e4f2a-3c71-4b9e-a0d6-8f1e2c7b9a34"
WORKLOAD_SUB = "6c2f0a8e-1d4b-4f7a-9e35-b08c7d1e4f62"
CONNECTIVITY_SUB = "f3a9b1c7-52e4-4d08-8b6f-2e7d9c0a1b53"
SUBSCRIPTION_NAMES = {WORKLOAD_SUB: "Contoso Workload (prod)", CONNECTIVITY_SUB: "Contoso Connectivity"}
LOCATION = "westeurope"
PAIRED_LOCATION = "northeurope"

_NS = uuid.UUID("0b8f3f8e-6a55-4c1e-9d4f-7c2a1e5b9d30")
_NS_BYTES = _NS.bytes


def guid(*parts: str) -> str:
    """A GUID that is the same on every build for the same parts: uuid5, computed without the
    UUID object so that generating large estates stays fast."""
    b = bytearray(hashlib.sha1(_NS_BYTES + "|".join(parts).encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _etag(resource_id: str) -> str:
    return f'W/"{guid("etag", resource_id.lower())}"'


def _rg(sub: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{name}"


# ---- resource groups -------------------------------------------------------------------------
RG_STORAGE = _rg(WORKLOAD_SUB, "rg-storage")
RG_VMS = _rg(WORKLOAD_SUB, "rg-vms")
RG_SPOKE = _rg(WORKLOAD_SUB, "rg-spoke-network")
RG_NETWORK_WATCHER = _rg(WORKLOAD_SUB, "NetworkWatcherRG")
RG_HUB = _rg(CONNECTIVITY_SUB, "rg-hub-network")
RG_MANAGEMENT = _rg(CONNECTIVITY_SUB, "rg-management")

_NET = "providers/Microsoft.Network"
_COMPUTE = "providers/Microsoft.Compute"
_STORAGE = "providers/Microsoft.Storage"

# ---- key resource ids ------------------------------------------------------------------------
BLOB_ACCOUNT = f"{RG_STORAGE}/{_STORAGE}/storageAccounts/stcontosoappdata"
FILES_ACCOUNT = f"{RG_STORAGE}/{_STORAGE}/storageAccounts/stcontosofiles"
DIAG_ACCOUNT = f"{RG_VMS}/{_STORAGE}/storageAccounts/stcontosovmdiag01"
STORAGE_ACCOUNTS = (BLOB_ACCOUNT, FILES_ACCOUNT, DIAG_ACCOUNT)

SPOKE_VNET = f"{RG_SPOKE}/{_NET}/virtualNetworks/vnet-spoke-prod-weu"
SPOKE_PREFIX = "10.1.0.0/16"
SUBNET_APPGW = f"{SPOKE_VNET}/subnets/snet-appgw"
SUBNET_WEB = f"{SPOKE_VNET}/subnets/snet-web"
SUBNET_APP = f"{SPOKE_VNET}/subnets/snet-app"
SUBNET_DATA = f"{SPOKE_VNET}/subnets/snet-data"
SPOKE_SUBNETS = (SUBNET_APPGW, SUBNET_WEB, SUBNET_APP, SUBNET_DATA)
NSG_SPOKE = f"{RG_SPOKE}/{_NET}/networkSecurityGroups/nsg-spoke-prod"
NSG_APPGW = f"{RG_SPOKE}/{_NET}/networkSecurityGroups/nsg-appgw-prod"
NSG_VM_SQL = f"{RG_VMS}/{_NET}/networkSecurityGroups/nsg-vm-sql-01"
ROUTE_TABLE_SPOKE = f"{RG_SPOKE}/{_NET}/routeTables/rt-spoke-prod"
ASG_WEB = f"{RG_SPOKE}/{_NET}/applicationSecurityGroups/asg-web-prod"
APP_GATEWAY = f"{RG_SPOKE}/{_NET}/applicationGateways/agw-contoso-prod"
APP_GATEWAY_PIP = f"{RG_SPOKE}/{_NET}/publicIPAddresses/pip-agw-contoso-prod"
KEY_VAULT = f"{RG_SPOKE}/providers/Microsoft.KeyVault/vaults/kv-contoso-agw-prod"
APPGW_IDENTITY = f"{RG_SPOKE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-agw-contoso-prod"

HUB_VNET = f"{RG_HUB}/{_NET}/virtualNetworks/vnet-hub-weu"
HUB_PREFIX = "10.0.0.0/16"
SUBNET_FIREWALL = f"{HUB_VNET}/subnets/AzureFirewallSubnet"
SUBNET_GATEWAY = f"{HUB_VNET}/subnets/GatewaySubnet"
SUBNET_BASTION = f"{HUB_VNET}/subnets/AzureBastionSubnet"
HUB_SUBNETS = (SUBNET_FIREWALL, SUBNET_GATEWAY, SUBNET_BASTION)
FIREWALL = f"{RG_HUB}/{_NET}/azureFirewalls/afw-hub-weu"
FIREWALL_POLICY = f"{RG_HUB}/{_NET}/firewallPolicies/afwp-hub-weu"
FIREWALL_PIP = f"{RG_HUB}/{_NET}/publicIPAddresses/pip-afw-hub-weu"
FIREWALL_PRIVATE_IP = "10.0.0.4"
VPN_GATEWAY = f"{RG_HUB}/{_NET}/virtualNetworkGateways/vpng-hub-weu"
VPN_GATEWAY_PIP = f"{RG_HUB}/{_NET}/publicIPAddresses/pip-vpng-hub-weu"
LOCAL_GATEWAY = f"{RG_HUB}/{_NET}/localNetworkGateways/lng-contoso-hq"
VPN_CONNECTION = f"{RG_HUB}/{_NET}/connections/cn-vpng-hub-to-hq"
ONPREM_PREFIX = "192.168.0.0/16"
PEERING_HUB_TO_SPOKE = f"{HUB_VNET}/virtualNetworkPeerings/peer-hub-to-spoke-prod"
PEERING_SPOKE_TO_HUB = f"{SPOKE_VNET}/virtualNetworkPeerings/peer-spoke-prod-to-hub"
WORKSPACE = f"{RG_MANAGEMENT}/providers/Microsoft.OperationalInsights/workspaces/log-contoso-platform"
NETWORK_WATCHER = f"{RG_NETWORK_WATCHER}/{_NET}/networkWatchers/NetworkWatcher_{PAIRED_LOCATION}"


def _vm(name: str) -> str:
    return f"{RG_VMS}/{_COMPUTE}/virtualMachines/{name}"


VM_WEB_01 = _vm("vm-web-01")
VM_WEB_02 = _vm("vm-web-02")
VM_APP_01 = _vm("vm-app-01")
VM_APP_02 = _vm("vm-app-02")
VM_SQL_01 = _vm("vm-sql-01")
VMS = (VM_WEB_01, VM_WEB_02, VM_APP_01, VM_APP_02, VM_SQL_01)
VM_PUBLIC_IP = f"{RG_VMS}/{_NET}/publicIPAddresses/pip-vm-web-01"

# ---- built-in roles (ids are the same in every tenant) ----------------------------------------
ROLE_OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
ROLE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ROLE_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
ROLE_STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
ROLE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
ROLE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_VM_ADMIN_LOGIN = "1c0163c0-47e6-4577-8991-ea5c82e286e4"
ROLE_VM_USER_LOGIN = "fb879df8-f326-4884-b1cf-06f3ad86be52"
ROLE_VM_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ROLE_CUSTOM_VNET_JOINER = guid("role", "Contoso VNet Joiner")
MCSB_INITIATIVE = "/providers/Microsoft.Authorization/policySetDefinitions/1f3afdf9-d0c9-4c3d-847f-89da613e70a8"

_BUILTIN_ROLES: dict[str, tuple[str, str, list[str], list[str], list[str]]] = {
    # guid: (name, description, actions, notActions, dataActions)
    ROLE_OWNER: ("Owner", "Grants full access to manage all resources, including the ability to assign "
                 "roles in Azure RBAC.", ["*"], [], []),
    ROLE_CONTRIBUTOR: ("Contributor", "Grants full access to manage all resources, but does not allow you "
                       "to assign roles in Azure RBAC.", ["*"],
                       ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                        "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
                        "Microsoft.Blueprint/blueprintAssignments/delete",
                        "Microsoft.Compute/galleries/share/action"], []),
    ROLE_READER: ("Reader", "View all resources, but does not allow you to make any changes.", ["*/read"], [], []),
    ROLE_NETWORK_CONTRIBUTOR: ("Network Contributor", "Lets you manage networks, but not access to them.",
                               ["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
                                "Microsoft.Network/*", "Microsoft.ResourceHealth/availabilityStatuses/read",
                                "Microsoft.Resources/deployments/*",
                                "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"],
                               [], []),
    ROLE_STORAGE_ACCOUNT_CONTRIBUTOR: ("Storage Account Contributor", "Lets you manage storage accounts, "
                                       "including accessing storage account keys which provide full access "
                                       "to storage account data.",
                                       ["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
                                        "Microsoft.Insights/diagnosticSettings/*",
                                        "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
                                        "Microsoft.ResourceHealth/availabilityStatuses/read",
                                        "Microsoft.Resources/deployments/*",
                                        "Microsoft.Resources/subscriptions/resourceGroups/read",
                                        "Microsoft.Storage/storageAccounts/*", "Microsoft.Support/*"], [], []),
    ROLE_BLOB_DATA_READER: ("Storage Blob Data Reader", "Allows for read access to Azure Storage blob "
                            "containers and data",
                            ["Microsoft.Storage/storageAccounts/blobServices/containers/read",
                             "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"],
                            [], ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]),
    ROLE_BLOB_DATA_CONTRIBUTOR: ("Storage Blob Data Contributor", "Allows for read, write and delete access "
                                 "to Azure Storage blob containers and data",
                                 ["Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                                  "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                                  "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                                  "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"],
                                 [], ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
                                      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                                      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                                      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
                                      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action"]),
    ROLE_VM_ADMIN_LOGIN: ("Virtual Machine Administrator Login", "View Virtual Machines in the portal and "
                          "login as administrator",
                          ["Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/virtualNetworks/read",
                           "Microsoft.Network/loadBalancers/read", "Microsoft.Network/networkInterfaces/read",
                           "Microsoft.Compute/virtualMachines/*/read"], [],
                          ["Microsoft.Compute/virtualMachines/login/action",
                           "Microsoft.Compute/virtualMachines/loginAsAdmin/action"]),
    ROLE_VM_USER_LOGIN: ("Virtual Machine User Login", "View Virtual Machines in the portal and login as a "
                         "regular user.",
                         ["Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/virtualNetworks/read",
                          "Microsoft.Network/loadBalancers/read", "Microsoft.Network/networkInterfaces/read",
                          "Microsoft.Compute/virtualMachines/*/read"], [],
                         ["Microsoft.Compute/virtualMachines/login/action"]),
    ROLE_KV_SECRETS_USER: ("Key Vault Secrets User", "Read secret contents.", [], [],
                           ["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                            "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]),
    ROLE_VM_CONTRIBUTOR: ("Virtual Machine Contributor", "Create and manage virtual machines, manage disks, "
                          "install and run software, reset password of the root user of the virtual machine "
                          "using VM extensions, and manage local user accounts using VM extensions.",
                          ["Microsoft.Authorization/*/read", "Microsoft.Compute/availabilitySets/*",
                           "Microsoft.Compute/locations/*", "Microsoft.Compute/virtualMachines/*",
                           "Microsoft.Compute/virtualMachineScaleSets/*", "Microsoft.Compute/disks/write",
                           "Microsoft.Compute/disks/read", "Microsoft.Compute/disks/delete",
                           "Microsoft.Network/networkInterfaces/*", "Microsoft.Network/virtualNetworks/read",
                           "Microsoft.Network/virtualNetworks/subnets/join/action",
                           "Microsoft.Resources/deployments/*",
                           "Microsoft.Resources/subscriptions/resourceGroups/read"], [], []),
}

# ---- people and workload identities (principalId -> (display name, principalType)) ------------
P_ALEX = guid("principal", "alex.morgan@contoso.com")
P_DANA = guid("principal", "dana.kim@contoso.com")
P_SAM = guid("principal", "sam.patel@contoso.com")
P_LEE = guid("principal", "lee.chen@contoso.com")
G_PLATFORM_ADMINS = guid("principal", "grp-platform-admins")
G_SECURITY_READERS = guid("principal", "grp-security-readers")
G_NETOPS = guid("principal", "grp-netops")
G_APPDATA_READERS = guid("principal", "grp-appdata-readers")
G_VM_ADMINS = guid("principal", "grp-vm-admins")
G_APP_OPERATORS = guid("principal", "grp-app-operators")
SP_DEPLOY = guid("principal", "sp-contoso-deploy")
MI_VM_WEB_01 = guid("principal", "mi", VM_WEB_01.lower())
MI_VM_APP_01 = guid("principal", "mi", VM_APP_01.lower())
MI_APPGW = guid("principal", "mi", APPGW_IDENTITY.lower())
PRINCIPALS: dict[str, tuple[str, str]] = {
    P_ALEX: ("alex.morgan@contoso.com", "User"),
    P_DANA: ("dana.kim@contoso.com", "User"),
    P_SAM: ("sam.patel@contoso.com", "User"),
    P_LEE: ("lee.chen@contoso.com", "User"),
    G_PLATFORM_ADMINS: ("grp-platform-admins", "Group"),
    G_SECURITY_READERS: ("grp-security-readers", "Group"),
    G_NETOPS: ("grp-netops", "Group"),
    G_APPDATA_READERS: ("grp-appdata-readers", "Group"),
    G_VM_ADMINS: ("grp-vm-admins", "Group"),
    G_APP_OPERATORS: ("grp-app-operators", "Group"),
    SP_DEPLOY: ("sp-contoso-deploy", "ServicePrincipal"),
    MI_VM_WEB_01: ("vm-web-01", "ServicePrincipal"),
    MI_VM_APP_01: ("vm-app-01", "ServicePrincipal"),
    MI_APPGW: ("id-agw-contoso-prod", "ServicePrincipal"),
}

TAGS_WORKLOAD = {"environment": "prod", "workload": "contoso-shop", "costCenter": "CC-1042",
                 "owner": "app-team@contoso.com"}
TAGS_NETWORK = {"environment": "prod", "workload": "connectivity", "costCenter": "CC-1001",
                "owner": "netops@contoso.com"}

ACTIVITY_LOG_CATEGORIES = ("Administrative", "Security", "ServiceHealth", "Alert", "Recommendation",
                           "Policy", "Autoscale", "ResourceHealth")


# ==============================================================================================
# builders
# ==============================================================================================
def _name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def _ref(resource_id: str) -> dict[str, str]:
    return {"id": resource_id}


def _resource(resource_id: str, rtype: str, properties: dict[str, Any], *, location: str | None = LOCATION,
              tags: dict[str, str] | None = None, etag: bool = True, provisioning: bool = True,
              **top: Any) -> Resource:
    res: Resource = {"id": resource_id, "name": _name(resource_id), "type": rtype}
    if location:
        res["location"] = location
    if tags is not None:
        res["tags"] = dict(tags)
    if etag:
        res["etag"] = _etag(resource_id)
    res.update({k: v for k, v in top.items() if v is not None})
    props = dict(properties)
    if provisioning:
        props = {"provisioningState": "Succeeded", **props}
    res["properties"] = props
    return res


def _child(resource_id: str, rtype: str, properties: dict[str, Any], *, etag: bool = True) -> Resource:
    return _resource(resource_id, rtype, properties, location=None, etag=etag)


def resource_groups() -> list[Resource]:
    out = []
    for rg_id, tags in ((RG_STORAGE, TAGS_WORKLOAD), (RG_VMS, TAGS_WORKLOAD), (RG_SPOKE, TAGS_WORKLOAD),
                        (RG_NETWORK_WATCHER, None), (RG_HUB, TAGS_NETWORK), (RG_MANAGEMENT, TAGS_NETWORK)):
        out.append(_resource(rg_id, "Microsoft.Resources/resourceGroups", {}, tags=tags or {}, etag=False,
                             location=PAIRED_LOCATION if rg_id == RG_NETWORK_WATCHER else LOCATION))
    return out


def subscriptions() -> list[Resource]:
    """Subscription entries carry the display names the sandbox shows when listing them."""
    return [{"id": f"/subscriptions/{sub}", "type": "Microsoft.Resources/subscriptions",
             "name": sub, "subscriptionId": sub, "tenantId": TENANT_ID, "displayName": name,
             "state": "Enabled"} for sub, name in SUBSCRIPTION_NAMES.items()]


# ---- storage ---------------------------------------------------------------------------------
def _endpoints(name: str, secondary: bool = False) -> dict[str, str]:
    suffix = "-secondary" if secondary else ""
    return {svc: f"https://{name}{suffix}.{svc}.core.windows.net/"
            for svc in ("dfs", "web", "blob", "queue", "table", "file")} | \
        {"web": f"https://{name}{suffix}.z6.web.core.windows.net/"}


def _account(resource_id: str, *, sku: str, created: str, props: dict[str, Any], tags: dict[str, str],
             identity: dict[str, Any] | None = None) -> Resource:
    name = _name(resource_id)
    geo = sku.endswith(("GRS", "GZRS"))
    base: dict[str, Any] = {
        "dnsEndpointType": "Standard",
        "keyCreationTime": {"key1": created, "key2": created},
        "privateEndpointConnections": [],
        "publicNetworkAccess": "Enabled",
        "networkAcls": {"bypass": "AzureServices", "virtualNetworkRules": [], "ipRules": [],
                        "defaultAction": "Allow"},
        "encryption": {"services": {"file": {"keyType": "Account", "enabled": True, "lastEnabledTime": created},
                                    "blob": {"keyType": "Account", "enabled": True, "lastEnabledTime": created}},
                       "keySource": "Microsoft.Storage"},
        "accessTier": "Hot",
        "creationTime": created,
        "primaryEndpoints": _endpoints(name),
        "primaryLocation": LOCATION,
        "statusOfPrimary": "available",
    }
    if geo:
        base.update({"secondaryLocation": PAIRED_LOCATION, "statusOfSecondary": "available",
                     "secondaryEndpoints": _endpoints(name, secondary=True)})
    base.update(props)
    return _resource(resource_id, "Microsoft.Storage/storageAccounts", base, tags=tags, etag=False,
                     sku={"name": sku, "tier": "Standard"}, kind="StorageV2", identity=identity)


def _storage_children(account: str, sku: str, *, smb: dict[str, Any], blob_delete_days: int | None,
                      containers: dict[str, str], shares: dict[str, int]) -> list[Resource]:
    skud = {"name": sku, "tier": "Standard"}
    blob_props: dict[str, Any] = {
        "cors": {"corsRules": []},
        "deleteRetentionPolicy": ({"allowPermanentDelete": False, "enabled": True, "days": blob_delete_days}
                                  if blob_delete_days else {"allowPermanentDelete": False, "enabled": False}),
        "containerDeleteRetentionPolicy": {"enabled": bool(blob_delete_days), **(
            {"days": blob_delete_days} if blob_delete_days else {})},
    }
    out = [
        _child(f"{account}/blobServices/default", "Microsoft.Storage/storageAccounts/blobServices",
               blob_props, etag=False) | {"sku": skud},
        _child(f"{account}/fileServices/default", "Microsoft.Storage/storageAccounts/fileServices",
               {"cors": {"corsRules": []}, "protocolSettings": {"smb": smb},
                "shareDeleteRetentionPolicy": {"enabled": True, "days": 7}}, etag=False) | {"sku": skud},
    ]
    for name, access in containers.items():
        cid = f"{account}/blobServices/default/containers/{name}"
        out.append(_resource(cid, "Microsoft.Storage/storageAccounts/blobServices/containers", {
            "publicAccess": access, "leaseStatus": "Unlocked", "leaseState": "Available",
            "lastModifiedTime": "2024-03-12T08:41:17.0000000Z", "hasImmutabilityPolicy": False,
            "hasLegalHold": False, "deleted": False, "remainingRetentionDays": 0,
            "defaultEncryptionScope": "$account-encryption-key", "denyEncryptionScopeOverride": False,
        }, location=None, etag=False, provisioning=False) | {"etag": '"0x8DC4271C3D0B5A1"'})
    for name, quota in shares.items():
        sid = f"{account}/fileServices/default/shares/{name}"
        out.append(_resource(sid, "Microsoft.Storage/storageAccounts/fileServices/shares", {
            "accessTier": "TransactionOptimized", "shareQuota": quota, "enabledProtocols": "SMB",
            "lastModifiedTime": "2024-03-12T09:02:44.0000000Z", "leaseStatus": "Unlocked",
            "leaseState": "Available", "accessTierChangeTime": "2024-03-12T09:02:44.0000000Z",
        }, location=None, etag=False, provisioning=False) | {"etag": '"0x8DC4272B11E0C3F"'})
    return out


def storage() -> list[Resource]:
    blob = _account(BLOB_ACCOUNT, sku="Standard_RAGRS", created="2021-06-14T10:22:05.3121446Z", tags=TAGS_WORKLOAD,
                    props={
                        # migrated as-is from an older estate: TLS 1.0, anonymous blobs, keys, no policies
                        "minimumTlsVersion": "TLS1_0",
                        "allowBlobPublicAccess": True,
                        "supportsHttpsTrafficOnly": True,
                        "allowCrossTenantReplication": True,
                    })
    files = _account(FILES_ACCOUNT, sku="Standard_ZRS", created="2023-02-02T14:05:51.8734012Z", tags=TAGS_WORKLOAD,
                     props={
                         # SMB shares for the app servers: secure transfer was turned off for an
                         # old Linux client, keys are used to mount, but the network is locked down
                         "minimumTlsVersion": "TLS1_2",
                         "allowBlobPublicAccess": False,
                         "allowSharedKeyAccess": True,
                         "supportsHttpsTrafficOnly": False,
                         "largeFileSharesState": "Enabled",
                         "defaultToOAuthAuthentication": False,
                         "allowCrossTenantReplication": False,
                         "sasPolicy": {"sasExpirationPeriod": "1.00:00:00", "expirationAction": "Log"},
                         "keyPolicy": {"keyExpirationPeriodInDays": 90},
                         "networkAcls": {"bypass": "AzureServices", "ipRules": [], "defaultAction": "Deny",
                                         "virtualNetworkRules": [{"id": SUBNET_APP, "action": "Allow",
                                                                  "state": "Succeeded"}]},
                     })
    diag = _account(DIAG_ACCOUNT, sku="Standard_LRS", created="2021-06-14T11:03:40.1188230Z", tags=TAGS_WORKLOAD,
                    props={
                        # boot diagnostics, created next to the VMs by the migration tooling
                        "minimumTlsVersion": "TLS1_2",
                        "allowBlobPublicAccess": False,
                        "supportsHttpsTrafficOnly": True,
                    })
    out = [blob, files, diag]
    out += _storage_children(BLOB_ACCOUNT, "Standard_RAGRS", smb={}, blob_delete_days=7,
                             containers={"product-images": "Blob", "orders-export": "None"}, shares={})
    out += _storage_children(FILES_ACCOUNT, "Standard_ZRS",
                             smb={"versions": "SMB2.1;SMB3.0;SMB3.1.1",
                                  "authenticationMethods": "NTLMv2;Kerberos",
                                  "kerberosTicketEncryption": "RC4-HMAC;AES-256",
                                  "channelEncryption": "AES-128-CCM;AES-128-GCM;AES-256-GCM",
                                  "multichannel": {"enabled": False}},
                             blob_delete_days=None, containers={}, shares={"app-content": 1024, "app-logs": 256})
    out += _storage_children(DIAG_ACCOUNT, "Standard_LRS", smb={}, blob_delete_days=None,
                             containers={"bootdiagnostics-vmweb01-3f1c": "None"}, shares={})
    # a per-account Defender override that switches the plan off for the file account
    out.append(_resource(f"{FILES_ACCOUNT}/providers/Microsoft.Security/defenderForStorageSettings/current",
                         "Microsoft.Security/defenderForStorageSettings", {
                             "isEnabled": False,
                             "overrideSubscriptionLevelSettings": True,
                             "malwareScanning": {"onUpload": {"isEnabled": False, "capGBPerMonth": -1},
                                                 "scanResultsEventGridTopicResourceId": None},
                             "sensitiveDataDiscovery": {"isEnabled": False},
                         }, location=None, etag=False, provisioning=False))
    return out


# ---- spoke network ---------------------------------------------------------------------------
def _rule(nsg: str, name: str, priority: int, direction: str, access: str, protocol: str, *,
          src: str | list[str] = "*", dst: str | list[str] = "*", port: str | list[str] = "*",
          src_asg: list[str] | None = None, dst_asg: list[str] | None = None, description: str = "") -> Resource:
    props: dict[str, Any] = {"protocol": protocol, "sourcePortRange": "*"}
    if description:
        props["description"] = description
    if isinstance(port, list):
        props.update(destinationPortRanges=port)
    else:
        props.update(destinationPortRange=port, destinationPortRanges=[])
    if isinstance(src, list):
        props.update(sourceAddressPrefixes=src)
    elif not src_asg:
        props.update(sourceAddressPrefix=src, sourceAddressPrefixes=[])
    if isinstance(dst, list):
        props.update(destinationAddressPrefixes=dst)
    elif not dst_asg:
        props.update(destinationAddressPrefix=dst, destinationAddressPrefixes=[])
    if src_asg:
        props["sourceApplicationSecurityGroups"] = [_ref(a) for a in src_asg]
    if dst_asg:
        props["destinationApplicationSecurityGroups"] = [_ref(a) for a in dst_asg]
    props.update(access=access, priority=priority, direction=direction, sourcePortRanges=[])
    return _child(f"{nsg}/securityRules/{name}", "Microsoft.Network/networkSecurityGroups/securityRules", props)


def _nsg(resource_id: str, tags: dict[str, str]) -> Resource:
    return _resource(resource_id, "Microsoft.Network/networkSecurityGroups",
                     {"resourceGuid": guid("guid", resource_id)}, tags=tags)


def _subnet(resource_id: str, prefix: str, *, nsg: str | None = None, route_table: str | None = None,
            service_endpoints: list[str] | None = None) -> Resource:
    props: dict[str, Any] = {"addressPrefix": prefix}
    if nsg:
        props["networkSecurityGroup"] = _ref(nsg)
    if route_table:
        props["routeTable"] = _ref(route_table)
    if service_endpoints:
        props["serviceEndpoints"] = [{"service": s, "locations": [LOCATION, PAIRED_LOCATION],
                                      "provisioningState": "Succeeded"} for s in service_endpoints]
    props.update(delegations=[], privateEndpointNetworkPolicies="Disabled",
                 privateLinkServiceNetworkPolicies="Enabled")
    return _child(resource_id, "Microsoft.Network/virtualNetworks/subnets", props)


def _vnet(resource_id: str, prefix: str, tags: dict[str, str]) -> Resource:
    return _resource(resource_id, "Microsoft.Network/virtualNetworks", {
        "resourceGuid": guid("guid", resource_id),
        "addressSpace": {"addressPrefixes": [prefix]},
        "dhcpOptions": {"dnsServers": []},
        "enableDdosProtection": False,
        "privateEndpointVNetPolicies": "Disabled",
    }, tags=tags)


def _public_ip(resource_id: str, address: str, *, zones: list[str], tags: dict[str, str],
               ip_configuration: str | None, ddos: bool = True, dns_label: str | None = None) -> Resource:
    props: dict[str, Any] = {
        "resourceGuid": guid("guid", resource_id),
        "ipAddress": address,
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": "Static",
        "idleTimeoutInMinutes": 4,
        "ipTags": [],
    }
    if ip_configuration:
        props["ipConfiguration"] = _ref(ip_configuration)
    if ddos:
        props["ddosSettings"] = {"protectionMode": "VirtualNetworkInherited"}
    if dns_label:
        props["dnsSettings"] = {"domainNameLabel": dns_label,
                                "fqdn": f"{dns_label}.{LOCATION}.cloudapp.azure.com"}
    return _resource(resource_id, "Microsoft.Network/publicIPAddresses", props, tags=tags, zones=zones,
                     sku={"name": "Standard", "tier": "Regional"})


def spoke() -> list[Resource]:
    t = TAGS_WORKLOAD
    out: list[Resource] = [_vnet(SPOKE_VNET, SPOKE_PREFIX, t)]
    out += [
        _subnet(SUBNET_APPGW, "10.1.0.0/24", nsg=NSG_APPGW),
        _subnet(SUBNET_WEB, "10.1.1.0/24", nsg=NSG_SPOKE),
        _subnet(SUBNET_APP, "10.1.2.0/24", nsg=NSG_SPOKE, route_table=ROUTE_TABLE_SPOKE,
                service_endpoints=["Microsoft.Storage"]),
        # the data tier was added after go-live: no NSG was ever associated
        _subnet(SUBNET_DATA, "10.1.3.0/24", route_table=ROUTE_TABLE_SPOKE),
    ]
    out.append(_child(PEERING_SPOKE_TO_HUB, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings", {
        "resourceGuid": guid("guid", "peering", HUB_VNET, SPOKE_VNET),
        "peeringState": "Connected", "peeringSyncLevel": "FullyInSync",
        "remoteVirtualNetwork": _ref(HUB_VNET),
        "allowVirtualNetworkAccess": True, "allowForwardedTraffic": True,
        "allowGatewayTransit": False, "useRemoteGateways": True, "doNotVerifyRemoteGateways": False,
        "peerCompleteVnets": True,
        "remoteAddressSpace": {"addressPrefixes": [HUB_PREFIX]},
        "remoteVirtualNetworkAddressSpace": {"addressPrefixes": [HUB_PREFIX]},
        "routeServiceVips": {},
    }))

    # one NSG shared by the web and app tiers, as the migration created it
    out.append(_nsg(NSG_SPOKE, t))
    out += [
        _rule(NSG_SPOKE, "AllowAppGwHttpsToWeb", 100, "Inbound", "Allow", "Tcp", src="10.1.0.0/24",
              dst_asg=[ASG_WEB], port="443", description="App Gateway to the web tier"),
        _rule(NSG_SPOKE, "AllowWebToApp8080", 110, "Inbound", "Allow", "Tcp", src="10.1.1.0/24",
              dst="10.1.2.0/24", port="8080"),
        _rule(NSG_SPOKE, "AllowAppToSql1433", 120, "Inbound", "Allow", "Tcp", src="10.1.2.0/24",
              dst="10.1.3.0/24", port="1433"),
        _rule(NSG_SPOKE, "AllowRdpFromAnywhere", 200, "Inbound", "Allow", "Tcp", src="*", port="3389",
              description="Temporary: vendor support during migration"),
        _rule(NSG_SPOKE, "AllowSshFromInternet", 210, "Inbound", "Allow", "Tcp", src="Internet",
              port=["22", "8022-8023"]),
        _rule(NSG_SPOKE, "AllowMgmtFromPartner", 220, "Inbound", "Allow", "Tcp",
              src=["203.0.113.0/24", "198.51.100.17/32"], port="20-25"),
        _rule(NSG_SPOKE, "AllowSshOutboundToInternet", 300, "Outbound", "Allow", "Tcp", dst="Internet",
              port="22"),
    ]
    # the App Gateway NSG was built from the documentation, so it already has the deny-all
    out.append(_nsg(NSG_APPGW, t))
    out += [
        _rule(NSG_APPGW, "AllowGatewayManager", 100, "Inbound", "Allow", "Tcp", src="GatewayManager",
              port="65200-65535"),
        _rule(NSG_APPGW, "AllowHttpsInbound", 110, "Inbound", "Allow", "Tcp", src="Internet", port="443"),
        _rule(NSG_APPGW, "AllowAzureLoadBalancer", 120, "Inbound", "Allow", "*", src="AzureLoadBalancer"),
        _rule(NSG_APPGW, "DenyAllInbound", 4096, "Inbound", "Deny", "*"),
    ]
    out.append(_resource(ROUTE_TABLE_SPOKE, "Microsoft.Network/routeTables", {
        "resourceGuid": guid("guid", ROUTE_TABLE_SPOKE), "disableBgpRoutePropagation": False}, tags=t))
    out += [
        _child(f"{ROUTE_TABLE_SPOKE}/routes/to-contoso-hq", "Microsoft.Network/routeTables/routes",
               {"addressPrefix": ONPREM_PREFIX, "nextHopType": "VirtualNetworkGateway", "hasBgpOverride": False}),
        _child(f"{ROUTE_TABLE_SPOKE}/routes/default-to-internet", "Microsoft.Network/routeTables/routes",
               {"addressPrefix": "0.0.0.0/0", "nextHopType": "Internet", "hasBgpOverride": False}),
    ]
    out.append(_resource(ASG_WEB, "Microsoft.Network/applicationSecurityGroups",
                         {"resourceGuid": guid("guid", ASG_WEB)}, tags=t))
    out.append(_public_ip(APP_GATEWAY_PIP, "20.105.214.38", zones=["1", "2", "3"], tags=t,
                          ip_configuration=f"{APP_GATEWAY}/frontendIPConfigurations/appGwPublicFrontendIp",
                          dns_label="contoso-shop"))
    out.append(app_gateway())
    # the App Gateway's certificate store and identity, kept next to it
    out.append(_resource(APPGW_IDENTITY, "Microsoft.ManagedIdentity/userAssignedIdentities", {
        "tenantId": TENANT_ID, "principalId": MI_APPGW, "clientId": guid("client", APPGW_IDENTITY)},
        tags=t, etag=False, provisioning=False))
    out.append(_resource(KEY_VAULT, "Microsoft.KeyVault/vaults", {
        "sku": {"family": "A", "name": "standard"}, "tenantId": TENANT_ID, "accessPolicies": [],
        "enabledForDeployment": False, "enabledForDiskEncryption": False, "enabledForTemplateDeployment": False,
        "enableSoftDelete": True, "softDeleteRetentionInDays": 90, "enableRbacAuthorization": True,
        "vaultUri": "https://kv-contoso-agw-prod.vault.azure.net/", "publicNetworkAccess": "Enabled",
    }, tags=t, etag=False))
    return out


def app_gateway() -> Resource:
    a = APP_GATEWAY
    sub = {"etag": _etag(a)}

    def part(kind: str, name: str, rtype: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "id": f"{a}/{kind}/{name}", **sub,
                "type": f"Microsoft.Network/applicationGateways/{rtype}",
                "properties": {"provisioningState": "Succeeded", **props}}

    web_ips = ["10.1.1.4", "10.1.1.5"]
    props = {
        "resourceGuid": guid("guid", a),
        "sku": {"name": "Standard_v2", "tier": "Standard_v2", "family": "Generation_1"},
        "operationalState": "Running",
        "gatewayIPConfigurations": [part("gatewayIPConfigurations", "appGatewayIpConfig",
                                         "gatewayIPConfigurations", {"subnet": _ref(SUBNET_APPGW)})],
        "sslCertificates": [part("sslCertificates", "shop-contoso-com", "sslCertificates", {
            "keyVaultSecretId": "https://kv-contoso-agw-prod.vault.azure.net/secrets/shop-contoso-com"})],
        "trustedRootCertificates": [], "trustedClientCertificates": [], "sslProfiles": [],
        "frontendIPConfigurations": [part("frontendIPConfigurations", "appGwPublicFrontendIp",
                                          "frontendIPConfigurations",
                                          {"privateIPAllocationMethod": "Dynamic",
                                           "publicIPAddress": _ref(APP_GATEWAY_PIP)})],
        "frontendPorts": [part("frontendPorts", "port_443", "frontendPorts", {"port": 443})],
        "backendAddressPools": [part("backendAddressPools", "pool-web", "backendAddressPools",
                                     {"backendAddresses": [{"ipAddress": ip} for ip in web_ips]})],
        "backendHttpSettingsCollection": [part("backendHttpSettingsCollection", "https-web",
                                               "backendHttpSettingsCollection", {
                                                   "port": 443, "protocol": "Https",
                                                   "cookieBasedAffinity": "Disabled",
                                                   "pickHostNameFromBackendAddress": False,
                                                   "hostName": "shop.contoso.com", "requestTimeout": 30,
                                                   "probe": _ref(f"{a}/probes/probe-web")})],
        "httpListeners": [part("httpListeners", "listener-https", "httpListeners", {
            "frontendIPConfiguration": _ref(f"{a}/frontendIPConfigurations/appGwPublicFrontendIp"),
            "frontendPort": _ref(f"{a}/frontendPorts/port_443"), "protocol": "Https",
            "sslCertificate": _ref(f"{a}/sslCertificates/shop-contoso-com"),
            "hostName": "shop.contoso.com", "hostNames": [], "requireServerNameIndication": True})],
        "urlPathMaps": [],
        "requestRoutingRules": [part("requestRoutingRules", "rule-https-web", "requestRoutingRules", {
            "ruleType": "Basic", "priority": 100,
            "httpListener": _ref(f"{a}/httpListeners/listener-https"),
            "backendAddressPool": _ref(f"{a}/backendAddressPools/pool-web"),
            "backendHttpSettings": _ref(f"{a}/backendHttpSettingsCollection/https-web")})],
        "probes": [part("probes", "probe-web", "probes", {
            "protocol": "Https", "host": "shop.contoso.com", "path": "/health", "interval": 30,
            "timeout": 30, "unhealthyThreshold": 3, "pickHostNameFromBackendHttpSettings": False,
            "minServers": 0, "match": {"statusCodes": ["200-399"]}})],
        "rewriteRuleSets": [], "redirectConfigurations": [], "privateLinkConfigurations": [],
        "privateEndpointConnections": [],
        "enableHttp2": True,
        "autoscaleConfiguration": {"minCapacity": 1, "maxCapacity": 4},
    }
    return _resource(a, "Microsoft.Network/applicationGateways", props, tags=TAGS_WORKLOAD, zones=["1", "2", "3"],
                     identity={"type": "UserAssigned", "userAssignedIdentities": {
                         APPGW_IDENTITY: {"principalId": MI_APPGW, "clientId": guid("client", APPGW_IDENTITY)}}})


# ---- virtual machines ------------------------------------------------------------------------
_IMAGES = {
    "ws2019": ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2019-datacenter-gensecond",
                "version": "latest", "exactVersion": "17763.6054.240703"}, "V2"),
    "ubuntu2204": ({"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
                    "version": "latest", "exactVersion": "22.04.202404100"}, "V2"),
    "rhel8": ({"publisher": "RedHat", "offer": "RHEL", "sku": "8_6", "version": "latest",
               "exactVersion": "8.6.2022060701"}, "V1"),
    "sql2019": ({"publisher": "MicrosoftSQLServer", "offer": "sql2019-ws2019", "sku": "enterprise-gen2",
                 "version": "latest", "exactVersion": "15.0.240712"}, "V2"),
}

_EXTENSIONS = {
    "AADLoginForWindows": ("Microsoft.Azure.ActiveDirectory", "AADLoginForWindows", "2.0", {}),
    "IaaSAntimalware": ("Microsoft.Azure.Security", "IaaSAntimalware", "1.3", {
        "AntimalwareEnabled": True, "RealtimeProtectionEnabled": "true",
        "ScheduledScanSettings": {"isEnabled": "true", "day": "7", "time": "120", "scanType": "Quick"},
        "Exclusions": {"Extensions": "", "Paths": "", "Processes": ""}}),
    "MicrosoftMonitoringAgent": ("Microsoft.EnterpriseCloud.Monitoring", "MicrosoftMonitoringAgent", "1.0", {
        "workspaceId": guid("workspace", WORKSPACE)}),
    "AzureMonitorLinuxAgent": ("Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent", "1.29", {}),
    "OmsAgentForLinux": ("Microsoft.EnterpriseCloud.Monitoring", "OmsAgentForLinux", "1.14", {
        "workspaceId": guid("workspace", WORKSPACE)}),
    "CustomScript": ("Microsoft.Azure.Extensions", "CustomScript", "2.1", {
        "fileUris": ["https://stcontosoappdata.blob.core.windows.net/orders-export/bootstrap.sh"]}),
    "SqlIaasExtension": ("Microsoft.SqlServer.Management", "SqlIaaSAgent", "2.0", {
        "SqlManagement": {"IsEnabled": True}, "DeploymentTokenSettings": {"DeploymentToken": 3141592}}),
}

# name: (tier, os, image, size, zone, private IP, options)
_VM_SPECS: list[tuple[str, str, str, str, str, str, str, dict[str, Any]]] = [
    ("vm-web-01", "web", "Windows", "ws2019", "Standard_D2s_v5", "1", "10.1.1.4", {
        "public_ip": "20.105.218.71", "identity": True, "asg": True,
        "patch": ("AutomaticByOS", "ImageDefault"), "extensions": ["AADLoginForWindows", "IaaSAntimalware"]}),
    ("vm-web-02", "web", "Windows", "ws2019", "Standard_D2s_v5", "2", "10.1.1.5", {
        "asg": True, "patch": ("AutomaticByOS", "ImageDefault"), "extensions": ["MicrosoftMonitoringAgent"]}),
    ("vm-app-01", "app", "Linux", "ubuntu2204", "Standard_D4s_v5", "1", "10.1.2.4", {
        # rebuilt last quarter from a Trusted Launch image: the one VM that is already hardened
        "identity": True, "trusted_launch": True, "encryption_at_host": True,
        "patch": ("AutomaticByPlatform", "AutomaticByPlatform"), "extensions": ["AzureMonitorLinuxAgent"],
        "gallery_app": True}),
    ("vm-app-02", "app", "Linux", "rhel8", "Standard_D4s_v3", "2", "10.1.2.5", {
        "patch": ("ImageDefault", "ImageDefault"), "extensions": ["OmsAgentForLinux", "CustomScript"]}),
    ("vm-sql-01", "data", "Windows", "sql2019", "Standard_E4ds_v5", "1", "10.1.3.4", {
        "patch": ("Manual", "ImageDefault"), "extensions": ["SqlIaasExtension"], "nic_nsg": NSG_VM_SQL,
        "data_disks": [("data", 512, "DenyAll"), ("log", 256, "AllowAll")]}),
]


def _disk(disk_id: str, *, size: int, sku: str, zone: str, vm: str, os_type: str | None,
          hyperv: str | None, image: dict[str, Any] | None, access: str, created: str) -> Resource:
    tier = {32: "P4", 64: "P6", 127: "P10", 128: "P10", 256: "P15", 512: "P20", 1024: "P30"}.get(size, "P10")
    props: dict[str, Any] = {}
    if os_type:
        props["osType"] = os_type
    if hyperv:
        props["hyperVGeneration"] = hyperv
    if image:
        props["creationData"] = {"createOption": "FromImage", "imageReference": {
            "id": (f"/Subscriptions/{WORKLOAD_SUB}/Providers/Microsoft.Compute/Locations/{LOCATION}/Publishers/"
                   f"{image['publisher']}/ArtifactTypes/VMImage/Offers/{image['offer']}/Skus/{image['sku']}/"
                   f"Versions/{image['exactVersion']}")}}
    else:
        props["creationData"] = {"createOption": "Empty"}
    props.update({
        "diskSizeGB": size, "diskIOPSReadWrite": 500, "diskMBpsReadWrite": 100,
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": access,
        "publicNetworkAccess": "Disabled" if access == "DenyAll" else "Enabled",
        "timeCreated": created, "diskState": "Attached", "diskSizeBytes": size * 1024 ** 3,
        "uniqueId": guid("disk", disk_id), "tier": tier,
    })
    return _resource(disk_id, "Microsoft.Compute/disks", props, tags=TAGS_WORKLOAD, etag=False,
                     managedBy=vm, zones=[zone], sku={"name": sku, "tier": "Premium"})


def _extension(vm: str, name: str, created_for: str) -> Resource:
    publisher, etype, version, settings = _EXTENSIONS[name]
    props: dict[str, Any] = {"autoUpgradeMinorVersion": True, "publisher": publisher, "type": etype,
                             "typeHandlerVersion": version}
    if settings:
        props["settings"] = settings
    if name == "AzureMonitorLinuxAgent":
        props["enableAutomaticUpgrade"] = True
    return _resource(f"{vm}/extensions/{name}", "Microsoft.Compute/virtualMachines/extensions", props,
                     tags=None, etag=False)


def _mac(nic_id: str) -> str:
    h = guid("mac", nic_id).replace("-", "")[:6].upper()
    return f"00-0D-3A-{h[0:2]}-{h[2:4]}-{h[4:6]}"


def vms() -> list[Resource]:
    out: list[Resource] = []
    for name, tier, os_type, image_key, size, zone, ip, opt in _VM_SPECS:
        vm_id = _vm(name)
        image, hyperv = _IMAGES[image_key]
        nic_id = f"{RG_VMS}/{_NET}/networkInterfaces/nic-{name}"
        subnet = {"web": SUBNET_WEB, "app": SUBNET_APP, "data": SUBNET_DATA}[tier]
        created = f"2021-06-{14 + len(out) % 10:02d}T12:{len(out) % 60:02d}:09.4471112+00:00"
        tags = TAGS_WORKLOAD | {"tier": tier}

        ipconfig: dict[str, Any] = {"privateIPAddress": ip, "privateIPAllocationMethod": "Static",
                                    "subnet": _ref(subnet), "primary": True, "privateIPAddressVersion": "IPv4"}
        if opt.get("public_ip"):
            ipconfig["publicIPAddress"] = _ref(VM_PUBLIC_IP)
        if opt.get("asg"):
            ipconfig["applicationSecurityGroups"] = [_ref(ASG_WEB)]
        nic_props: dict[str, Any] = {
            "resourceGuid": guid("guid", nic_id),
            "ipConfigurations": [{"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                  "etag": _etag(nic_id),
                                  "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                                  "properties": {"provisioningState": "Succeeded", **ipconfig}}],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": [],
                            "internalDomainNameSuffix": "q3kxv0mxn5eunbzbhkxq1a2zxd.ax.internal.cloudapp.net"},
            "macAddress": _mac(nic_id),
            "vnetEncryptionSupported": False, "enableIPForwarding": False,
            "enableAcceleratedNetworking": True, "disableTcpStateTracking": False, "primary": True,
            "virtualMachine": _ref(vm_id), "hostedWorkloads": [], "tapConfigurations": [],
            "nicType": "Standard", "auxiliaryMode": "None", "auxiliarySku": "None",
        }
        if opt.get("nic_nsg"):
            nic_props["networkSecurityGroup"] = _ref(opt["nic_nsg"])
        out.append(_resource(nic_id, "Microsoft.Network/networkInterfaces", nic_props, tags=tags, kind="Regular"))
        if opt.get("public_ip"):
            out.append(_public_ip(VM_PUBLIC_IP, opt["public_ip"], zones=[zone], tags=tags,
                                  ip_configuration=f"{nic_id}/ipConfigurations/ipconfig1", ddos=False))

        os_disk_name = f"{name}_OsDisk_1_{guid('osdisk', vm_id).replace('-', '')}"
        os_disk_id = f"{RG_VMS}/{_COMPUTE}/disks/{os_disk_name}"
        os_size = 127 if os_type == "Windows" else 64
        out.append(_disk(os_disk_id, size=os_size, sku="Premium_LRS", zone=zone, vm=vm_id, os_type=os_type,
                         hyperv=hyperv, image=image, access="AllowAll", created=created))
        data_disks = []
        for lun, (label, dsize, access) in enumerate(opt.get("data_disks", [])):
            did = f"{RG_VMS}/{_COMPUTE}/disks/{name}-{label}-01"
            out.append(_disk(did, size=dsize, sku="Premium_LRS", zone=zone, vm=vm_id, os_type=None,
                             hyperv=None, image=None, access=access, created=created))
            data_disks.append({"lun": lun, "name": _name(did), "createOption": "Attach",
                               "caching": "ReadOnly" if label == "data" else "None",
                               "writeAcceleratorEnabled": False,
                               "managedDisk": {"storageAccountType": "Premium_LRS", "id": did},
                               "deleteOption": "Detach", "diskSizeGB": dsize, "toBeDetached": False})

        patch_mode, assessment = opt["patch"]
        if os_type == "Windows":
            os_config: dict[str, Any] = {"windowsConfiguration": {
                "provisionVMAgent": True, "enableAutomaticUpdates": patch_mode != "Manual",
                "patchSettings": {"patchMode": patch_mode, "assessmentMode": assessment,
                                  "enableHotpatching": False},
                "enableVMAgentPlatformUpdates": False}}
        else:
            os_config = {"linuxConfiguration": {
                "disablePasswordAuthentication": True,
                "ssh": {"publicKeys": [{"path": "/home/azureadmin/.ssh/authorized_keys",
                                        "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnlyNotARealKey0000 "
                                                   "azureadmin@contoso"}]},
                "provisionVMAgent": True,
                "patchSettings": {"patchMode": patch_mode, "assessmentMode": assessment},
                "enableVMAgentPlatformUpdates": False}}
        if patch_mode == "AutomaticByPlatform":
            settings = os_config.get("linuxConfiguration") or os_config["windowsConfiguration"]
            settings["patchSettings"]["automaticByPlatformSettings"] = {
                "rebootSetting": "IfRequired", "bypassPlatformSafetyChecksOnUserSchedule": False}

        props: dict[str, Any] = {
            "vmId": guid("vmid", vm_id),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": dict(image),
                "osDisk": {"osType": os_type, "name": os_disk_name, "createOption": "FromImage",
                           "caching": "ReadWrite",
                           "managedDisk": {"storageAccountType": "Premium_LRS", "id": os_disk_id},
                           "deleteOption": "Detach", "diskSizeGB": os_size},
                "dataDisks": data_disks,
                "diskControllerType": "SCSI",
            },
            "osProfile": {"computerName": name, "adminUsername": "azureadmin", **os_config, "secrets": [],
                          "allowExtensionOperations": True, "requireGuestProvisionSignal": True},
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"deleteOption": "Detach"}}]},
            "diagnosticsProfile": {"bootDiagnostics": {
                "enabled": True, "storageUri": "https://stcontosovmdiag01.blob.core.windows.net/"}},
            "timeCreated": created,
        }
        if opt.get("trusted_launch"):
            props["securityProfile"] = {"uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
                                        "securityType": "TrustedLaunch",
                                        "encryptionAtHost": bool(opt.get("encryption_at_host"))}
        if os_type == "Windows":
            props["licenseType"] = "Windows_Server"
        if opt.get("gallery_app"):
            props["applicationProfile"] = {"galleryApplications": [{
                "packageReferenceId": (f"/subscriptions/{WORKLOAD_SUB}/resourceGroups/rg-vms/providers/"
                                       "Microsoft.Compute/galleries/galcontoso/applications/order-worker/"
                                       "versions/1.4.2"),
                "order": 1, "treatFailureAsDeploymentFailure": False}]}
        identity = None
        if opt.get("identity"):
            identity = {"type": "SystemAssigned",
                        "principalId": MI_VM_WEB_01 if name == "vm-web-01" else MI_VM_APP_01,
                        "tenantId": TENANT_ID}
        out.append(_resource(vm_id, "Microsoft.Compute/virtualMachines", props, tags=tags, zones=[zone],
                             identity=identity) | {"etag": f'"{3 + len(name) % 5}"'})
        for ext in opt.get("extensions", []):
            out.append(_extension(vm_id, ext, name))

    # the data tier's NIC carries its own NSG (which does not stand in for the missing subnet NSG)
    out.append(_nsg(NSG_VM_SQL, TAGS_WORKLOAD))
    out += [
        _rule(NSG_VM_SQL, "AllowRdpFromBastionSubnet", 100, "Inbound", "Allow", "Tcp", src="10.0.2.0/26",
              port="3389"),
        _rule(NSG_VM_SQL, "AllowWinRmFromAnywhere", 110, "Inbound", "Allow", "Tcp", src="0.0.0.0/0",
              port=["5985-5986"]),
        _rule(NSG_VM_SQL, "AllowSqlFromAppTier", 120, "Inbound", "Allow", "Tcp", src=["10.1.2.4", "10.1.2.5"],
              port="1433"),
        _rule(NSG_VM_SQL, "DenyRdpFromInternet", 4000, "Inbound", "Deny", "Tcp", src="Internet", port="3389"),
    ]
    return out


# ---- hub network -----------------------------------------------------------------------------
def hub() -> list[Resource]:
    t = TAGS_NETWORK
    out: list[Resource] = [_vnet(HUB_VNET, HUB_PREFIX, t)]
    out += [
        _subnet(SUBNET_FIREWALL, "10.0.0.0/26"),
        _subnet(SUBNET_GATEWAY, "10.0.1.0/27"),
        # reserved for Bastion, which was never deployed; no NSG either
        _subnet(SUBNET_BASTION, "10.0.2.0/26"),
    ]
    out.append(_child(PEERING_HUB_TO_SPOKE, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings", {
        "resourceGuid": guid("guid", "peering", HUB_VNET, SPOKE_VNET),
        "peeringState": "Connected", "peeringSyncLevel": "FullyInSync",
        "remoteVirtualNetwork": _ref(SPOKE_VNET),
        "allowVirtualNetworkAccess": True, "allowForwardedTraffic": True,
        "allowGatewayTransit": True, "useRemoteGateways": False, "doNotVerifyRemoteGateways": False,
        "peerCompleteVnets": True,
        "remoteAddressSpace": {"addressPrefixes": [SPOKE_PREFIX]},
        "remoteVirtualNetworkAddressSpace": {"addressPrefixes": [SPOKE_PREFIX]},
        "routeServiceVips": {},
    }))
    out.append(_public_ip(FIREWALL_PIP, "20.23.152.9", zones=["1", "2", "3"], tags=t,
                          ip_configuration=f"{FIREWALL}/azureFirewallIpConfigurations/ipconfig1"))
    out.append(_public_ip(VPN_GATEWAY_PIP, "20.23.153.114", zones=["1", "2", "3"], tags=t,
                          ip_configuration=f"{VPN_GATEWAY}/ipConfigurations/default"))
    out.append(_resource(FIREWALL, "Microsoft.Network/azureFirewalls", {
        "sku": {"name": "AZFW_VNet", "tier": "Standard"},
        "threatIntelMode": "Alert",
        "additionalProperties": {},
        "ipConfigurations": [{"name": "ipconfig1", "id": f"{FIREWALL}/azureFirewallIpConfigurations/ipconfig1",
                              "etag": _etag(FIREWALL),
                              "type": "Microsoft.Network/azureFirewalls/azureFirewallIpConfigurations",
                              "properties": {"provisioningState": "Succeeded",
                                             "privateIPAddress": FIREWALL_PRIVATE_IP,
                                             "privateIPAllocationMethod": "Dynamic",
                                             "subnet": _ref(SUBNET_FIREWALL),
                                             "publicIPAddress": _ref(FIREWALL_PIP)}}],
        "networkRuleCollections": [], "applicationRuleCollections": [], "natRuleCollections": [],
        "firewallPolicy": _ref(FIREWALL_POLICY),
        "ipGroups": [],
    }, tags=t, zones=["1", "2", "3"]))
    out.append(_resource(FIREWALL_POLICY, "Microsoft.Network/firewallPolicies", {
        "sku": {"tier": "Standard"},
        "threatIntelMode": "Alert",
        "threatIntelWhitelist": {"ipAddresses": [], "fqdns": []},
        "dnsSettings": {"servers": [], "enableProxy": True},
        "firewalls": [_ref(FIREWALL)],
        "childPolicies": [],
        "size": "0.0076 MB",
    }, tags=t))
    rcg = "Microsoft.Network/firewallPolicies/ruleCollectionGroups"
    out.append(_child(f"{FIREWALL_POLICY}/ruleCollectionGroups/DefaultNetworkRuleCollectionGroup", rcg, {
        "priority": 200, "size": "0.0018 MB",
        "ruleCollections": [{
            "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "net-allow-platform",
            "priority": 200, "action": {"type": "Allow"},
            "rules": [
                {"ruleType": "NetworkRule", "name": "dns-to-azure", "ipProtocols": ["UDP", "TCP"],
                 "sourceAddresses": [SPOKE_PREFIX], "sourceIpGroups": [], "destinationAddresses": ["168.63.129.16"],
                 "destinationIpGroups": [], "destinationFqdns": [], "destinationPorts": ["53"]},
                {"ruleType": "NetworkRule", "name": "ntp", "ipProtocols": ["UDP"],
                 "sourceAddresses": [SPOKE_PREFIX], "sourceIpGroups": [], "destinationAddresses": [],
                 "destinationIpGroups": [], "destinationFqdns": ["time.windows.com"], "destinationPorts": ["123"]},
                {"ruleType": "NetworkRule", "name": "onprem-to-spoke-any", "ipProtocols": ["Any"],
                 "sourceAddresses": [ONPREM_PREFIX], "sourceIpGroups": [], "destinationAddresses": [SPOKE_PREFIX],
                 "destinationIpGroups": [], "destinationFqdns": [], "destinationPorts": ["*"]},
            ]}],
    }))
    out.append(_child(f"{FIREWALL_POLICY}/ruleCollectionGroups/DefaultApplicationRuleCollectionGroup", rcg, {
        "priority": 300, "size": "0.0021 MB",
        "ruleCollections": [{
            "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "app-allow-outbound",
            "priority": 300, "action": {"type": "Allow"},
            "rules": [
                {"ruleType": "ApplicationRule", "name": "windows-update", "sourceAddresses": [SPOKE_PREFIX],
                 "sourceIpGroups": [], "protocols": [{"protocolType": "Http", "port": 80},
                                                     {"protocolType": "Https", "port": 443}],
                 "fqdnTags": ["WindowsUpdate"], "targetFqdns": [], "targetUrls": [], "webCategories": [],
                 "destinationAddresses": [], "terminateTLS": False},
                {"ruleType": "ApplicationRule", "name": "appgw-to-shop", "sourceAddresses": ["10.1.0.0/24"],
                 "sourceIpGroups": [], "protocols": [{"protocolType": "Https", "port": 443}],
                 "fqdnTags": [], "targetFqdns": ["shop.contoso.com"], "targetUrls": [], "webCategories": [],
                 "destinationAddresses": [], "terminateTLS": False},
            ]}],
    }))
    out.append(_resource(VPN_GATEWAY, "Microsoft.Network/virtualNetworkGateways", {
        "resourceGuid": guid("guid", VPN_GATEWAY),
        "packetCaptureDiagnosticState": "None", "enablePrivateIpAddress": False,
        "ipConfigurations": [{"name": "default", "id": f"{VPN_GATEWAY}/ipConfigurations/default",
                              "etag": _etag(VPN_GATEWAY),
                              "type": "Microsoft.Network/virtualNetworkGateways/ipConfigurations",
                              "properties": {"provisioningState": "Succeeded",
                                             "privateIPAllocationMethod": "Dynamic",
                                             "subnet": _ref(SUBNET_GATEWAY),
                                             "publicIPAddress": _ref(VPN_GATEWAY_PIP)}}],
        "natRules": [], "enableBgpRouteTranslationForNat": False, "disableIPSecReplayProtection": False,
        "sku": {"name": "VpnGw1AZ", "tier": "VpnGw1AZ", "capacity": 2},
        "gatewayType": "Vpn", "vpnType": "RouteBased", "enableBgp": False, "activeActive": False,
        "bgpSettings": {"asn": 65515, "bgpPeeringAddress": "10.0.1.30", "peerWeight": 0,
                        "bgpPeeringAddresses": [{"ipconfigurationId": f"{VPN_GATEWAY}/ipConfigurations/default",
                                                 "defaultBgpIpAddresses": ["10.0.1.30"],
                                                 "customBgpIpAddresses": [],
                                                 "tunnelIpAddresses": ["20.23.153.114"]}]},
        "vpnGatewayGeneration": "Generation1", "allowRemoteVnetTrafficForVpn": False,
    }, tags=t))
    out.append(_resource(LOCAL_GATEWAY, "Microsoft.Network/localNetworkGateways", {
        "resourceGuid": guid("guid", LOCAL_GATEWAY),
        "localNetworkAddressSpace": {"addressPrefixes": [ONPREM_PREFIX]},
        "gatewayIpAddress": "198.51.100.10",
    }, tags=t))
    out.append(_resource(VPN_CONNECTION, "Microsoft.Network/connections", {
        "resourceGuid": guid("guid", VPN_CONNECTION),
        "virtualNetworkGateway1": _ref(VPN_GATEWAY), "localNetworkGateway2": _ref(LOCAL_GATEWAY),
        "connectionType": "IPsec", "connectionProtocol": "IKEv2", "routingWeight": 0,
        "enableBgp": False, "useLocalAzureIpAddress": False, "usePolicyBasedTrafficSelectors": False,
        "ipsecPolicies": [], "trafficSelectorPolicies": [], "connectionStatus": "Connected",
        "ingressBytesTransferred": 918273645, "egressBytesTransferred": 1029384756,
        "expressRouteGatewayBypass": False, "dpdTimeoutSeconds": 45, "connectionMode": "Default",
    }, tags=t))
    # firewall logs go to the legacy AzureDiagnostics table, and not every category
    out.append(_resource(f"{FIREWALL}/providers/Microsoft.Insights/diagnosticSettings/afw-hub-diag",
                         "Microsoft.Insights/diagnosticSettings", {
                             "workspaceId": WORKSPACE, "logAnalyticsDestinationType": None,
                             "logs": [
                                 {"category": "AzureFirewallApplicationRule", "categoryGroup": None,
                                  "enabled": True, "retentionPolicy": {"enabled": False, "days": 0}},
                                 {"category": "AzureFirewallNetworkRule", "categoryGroup": None,
                                  "enabled": True, "retentionPolicy": {"enabled": False, "days": 0}},
                                 {"category": "AzureFirewallDnsProxy", "categoryGroup": None,
                                  "enabled": False, "retentionPolicy": {"enabled": False, "days": 0}},
                             ],
                             "metrics": [{"category": "AllMetrics", "enabled": True, "timeGrain": None,
                                          "retentionPolicy": {"enabled": False, "days": 0}}],
                         }, location=None, etag=False, provisioning=False))
    return out


# ---- management and monitoring -----------------------------------------------------------------
def management() -> list[Resource]:
    return [
        _resource(WORKSPACE, "Microsoft.OperationalInsights/workspaces", {
            "customerId": guid("workspace", WORKSPACE),
            "sku": {"name": "PerGB2018", "lastSkuUpdate": "2022-01-10T09:00:00.0000000Z"},
            "retentionInDays": 30,
            "features": {"legacy": 0, "searchVersion": 1, "enableLogAccessUsingOnlyResourcePermissions": True},
            "workspaceCapping": {"dailyQuotaGb": -1.0, "dataIngestionStatus": "RespectQuota"},
            "publicNetworkAccessForIngestion": "Enabled", "publicNetworkAccessForQuery": "Enabled",
            "createdDate": "2022-01-10T09:00:00.0000000Z", "modifiedDate": "2024-05-02T15:30:12.0000000Z",
        }, tags=TAGS_NETWORK, etag=False),
        # created automatically for a test VNet in the paired region, long since deleted; none
        # exists in West Europe, where the hub and the spoke live
        _resource(NETWORK_WATCHER, "Microsoft.Network/networkWatchers", {"runningOperationIds": []},
                  location=PAIRED_LOCATION, tags={}),
    ]


# ---- subscription scope --------------------------------------------------------------------------
_PRICING_NAMES = ("VirtualMachines", "StorageAccounts", "CloudPosture", "Arm", "KeyVaults",
                  "SqlServerVirtualMachines", "Containers", "AppServices")


def _pricing(sub: str, name: str, tier: str, **extra: Any) -> Resource:
    props: dict[str, Any] = {"pricingTier": tier, "freeTrialRemainingTime": "PT0S"}
    if tier == "Standard":
        props["enablementTime"] = "2025-02-03T10:11:12.0000000Z"
    props.update(extra)
    return _resource(f"/subscriptions/{sub}/providers/Microsoft.Security/pricings/{name}",
                     "Microsoft.Security/pricings", props, location=None, etag=False, provisioning=False)


def defender() -> list[Resource]:
    out = [_pricing(WORKLOAD_SUB, n, "Free") for n in _PRICING_NAMES]
    for n in _PRICING_NAMES:
        if n == "VirtualMachines":
            # the network team enabled Servers Plan 1 for the hub; no agentless scanning
            out.append(_pricing(CONNECTIVITY_SUB, n, "Standard", subPlan="P1", extensions=[
                {"name": "MdeDesignatedSubscription", "isEnabled": "False"}]))
        elif n == "Arm":
            out.append(_pricing(CONNECTIVITY_SUB, n, "Standard", subPlan="PerSubscription"))
        else:
            out.append(_pricing(CONNECTIVITY_SUB, n, "Free"))
    for sub, wdatp in ((WORKLOAD_SUB, False), (CONNECTIVITY_SUB, True)):
        for setting, enabled in (("WDATP", wdatp), ("MCAS", True)):
            out.append(_resource(f"/subscriptions/{sub}/providers/Microsoft.Security/settings/{setting}",
                                 "Microsoft.Security/settings", {"enabled": enabled}, location=None,
                                 etag=False, provisioning=False, kind="DataExportSettings"))
    for sub, current, maximum in ((WORKLOAD_SUB, 21.0, 58), (CONNECTIVITY_SUB, 33.0, 52)):
        out.append(_resource(f"/subscriptions/{sub}/providers/Microsoft.Security/secureScores/ascScore",
                             "Microsoft.Security/secureScores", {
                                 "displayName": "ASC score",
                                 "score": {"max": maximum, "current": current,
                                           "percentage": round(current / maximum, 4)},
                                 "weight": 24}, location=None, etag=False, provisioning=False))
    return out


_ASSESSMENTS = {
    "ffff0522-1e88-47fc-8382-2a80ba848f5d": "Machines should have a vulnerability assessment solution",
    "bc303248-3d14-44c2-96a0-55f5c326b5fe": "Management ports should be closed on your virtual machines",
    "e1145ab1-eb4f-43d8-911b-36ddf771d13f": "System updates should be installed on your machines",
    "eade5b56-eefd-444f-95c8-23f29e5d93cb": "Subnets should be associated with a network security group",
    "e3de1cc0-f4dd-3b34-e496-8b5381ba2d70": "Azure DDoS Protection Standard should be enabled",
    "805651bc-6ecd-4c73-9b55-97a19d0582d0": "Management ports of virtual machines should be protected "
                                            "with just-in-time network access control",
}


def _assessment(resource: str, name: str, code: str) -> Resource:
    status: dict[str, Any] = {"code": code, "firstEvaluationDate": "2025-02-03T10:30:00.0000000Z",
                              "statusChangeDate": "2025-02-03T10:30:00.0000000Z"}
    if code == "NotApplicable":
        status["cause"] = "OffByPolicy"
        status["description"] = "This assessment is not applicable to the resource."
    return _resource(f"{resource}/providers/Microsoft.Security/assessments/{name}",
                     "Microsoft.Security/assessments", {
                         "resourceDetails": {"Source": "Azure", "Id": resource},
                         "displayName": _ASSESSMENTS[name], "status": status, "additionalData": {}},
                     location=None, etag=False, provisioning=False)


def assessments() -> list[Resource]:
    out = []
    exposed = {VM_WEB_01, VM_WEB_02, VM_APP_01, VM_APP_02}
    for vm in VMS:
        out.append(_assessment(vm, "ffff0522-1e88-47fc-8382-2a80ba848f5d", "Unhealthy"))
        out.append(_assessment(vm, "bc303248-3d14-44c2-96a0-55f5c326b5fe",
                               "Unhealthy" if vm in exposed else "Healthy"))
        out.append(_assessment(vm, "805651bc-6ecd-4c73-9b55-97a19d0582d0",
                               "Unhealthy" if vm in exposed else "NotApplicable"))
        out.append(_assessment(vm, "e1145ab1-eb4f-43d8-911b-36ddf771d13f",
                               "Healthy" if vm == VM_APP_01 else "Unhealthy"))
    for subnet in (SUBNET_DATA, SUBNET_BASTION):
        out.append(_assessment(subnet, "eade5b56-eefd-444f-95c8-23f29e5d93cb", "Unhealthy"))
    for vnet in (HUB_VNET, SPOKE_VNET):
        out.append(_assessment(vnet, "e3de1cc0-f4dd-3b34-e496-8b5381ba2d70", "Unhealthy"))
    return out


def _role_definition_id(sub: str, role: str) -> str:
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"


# (scope, role guid, principal)
_ASSIGNMENTS: list[tuple[str, str, str]] = [
    (f"/subscriptions/{WORKLOAD_SUB}", ROLE_OWNER, P_ALEX),
    (f"/subscriptions/{WORKLOAD_SUB}", ROLE_OWNER, G_PLATFORM_ADMINS),
    (f"/subscriptions/{WORKLOAD_SUB}", ROLE_READER, G_SECURITY_READERS),
    (RG_STORAGE, ROLE_STORAGE_ACCOUNT_CONTRIBUTOR, P_DANA),
    (BLOB_ACCOUNT, ROLE_BLOB_DATA_READER, G_APPDATA_READERS),
    (BLOB_ACCOUNT, ROLE_BLOB_DATA_CONTRIBUTOR, MI_VM_APP_01),
    (RG_VMS, ROLE_CONTRIBUTOR, P_SAM),
    (RG_VMS, ROLE_VM_ADMIN_LOGIN, G_VM_ADMINS),
    (RG_VMS, ROLE_VM_USER_LOGIN, G_APP_OPERATORS),
    (RG_SPOKE, ROLE_OWNER, P_LEE),
    (RG_SPOKE, ROLE_NETWORK_CONTRIBUTOR, G_NETOPS),
    (RG_SPOKE, ROLE_CUSTOM_VNET_JOINER, SP_DEPLOY),
    (f"/subscriptions/{CONNECTIVITY_SUB}", ROLE_OWNER, P_ALEX),
    (f"/subscriptions/{CONNECTIVITY_SUB}", ROLE_READER, G_SECURITY_READERS),
    (f"/subscriptions/{CONNECTIVITY_SUB}", ROLE_CONTRIBUTOR, SP_DEPLOY),
    (RG_HUB, ROLE_NETWORK_CONTRIBUTOR, P_LEE),
    (RG_HUB, ROLE_NETWORK_CONTRIBUTOR, G_NETOPS),
    (KEY_VAULT, ROLE_KV_SECRETS_USER, MI_APPGW),
]


def rbac() -> list[Resource]:
    out: list[Resource] = []
    used: dict[str, set[str]] = {WORKLOAD_SUB: set(), CONNECTIVITY_SUB: set()}
    for scope, role, principal in _ASSIGNMENTS:
        sub = scope.split("/")[2]
        used[sub].add(role)
        assignment = guid("roleAssignment", scope.lower(), role, principal)
        created = "2021-06-14T09:12:44.2210000Z" if principal in (P_ALEX, G_PLATFORM_ADMINS) \
            else "2023-09-05T16:40:03.5730000Z"
        out.append(_resource(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
                             "Microsoft.Authorization/roleAssignments", {
                                 "roleDefinitionId": _role_definition_id(sub, role),
                                 "principalId": principal,
                                 "principalType": PRINCIPALS[principal][1],
                                 "scope": scope,
                                 "condition": None, "conditionVersion": None,
                                 "createdOn": created, "updatedOn": created,
                                 "createdBy": P_ALEX if principal != P_ALEX else None,
                                 "updatedBy": P_ALEX if principal != P_ALEX else None,
                                 "delegatedManagedIdentityResourceId": None, "description": None,
                             }, location=None, etag=False, provisioning=False))
    for sub, roles in used.items():
        for role in sorted(roles):
            if role in _BUILTIN_ROLES:
                name, desc, actions, not_actions, data_actions = _BUILTIN_ROLES[role]
                out.append(_role_definition(sub, role, name, desc, "BuiltInRole", ["/"], actions, not_actions,
                                            data_actions))
            elif role == ROLE_CUSTOM_VNET_JOINER:
                # meant for "join a subnet", but grants every subnet operation
                out.append(_role_definition(sub, role, "Contoso VNet Joiner",
                                            "Lets deployment pipelines attach NICs to spoke subnets.",
                                            "CustomRole", [f"/subscriptions/{WORKLOAD_SUB}"],
                                            ["Microsoft.Network/virtualNetworks/read",
                                             "Microsoft.Network/virtualNetworks/subnets/*"], [], []))
    return out


def _role_definition(sub: str, role: str, name: str, description: str, kind: str, scopes: list[str],
                     actions: list[str], not_actions: list[str], data_actions: list[str]) -> Resource:
    return _resource(_role_definition_id(sub, role), "Microsoft.Authorization/roleDefinitions", {
        "roleName": name, "type": kind, "description": description, "assignableScopes": scopes,
        "permissions": [{"actions": actions, "notActions": not_actions, "dataActions": data_actions,
                         "notDataActions": []}],
        "createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2024-04-16T18:24:53.1548214Z",
        "createdBy": None, "updatedBy": None,
    }, location=None, etag=False, provisioning=False)


def governance() -> list[Resource]:
    """Policy assignments and activity-log export, the subscription-wide settings."""
    out = [
        _resource(f"/subscriptions/{WORKLOAD_SUB}/providers/Microsoft.Authorization/policyAssignments/"
                  "SecurityCenterBuiltIn", "Microsoft.Authorization/policyAssignments", {
                      "displayName": f"ASC Default (subscription: {WORKLOAD_SUB})",
                      "policyDefinitionId": MCSB_INITIATIVE,
                      "scope": f"/subscriptions/{WORKLOAD_SUB}", "notScopes": [], "parameters": {},
                      "enforcementMode": "Default",
                      "metadata": {"assignedBy": "Security Center", "createdOn": "2021-06-14T09:30:00.0000000Z"},
                  }, location=None, etag=False, provisioning=False),
        _resource(f"/subscriptions/{CONNECTIVITY_SUB}/providers/Microsoft.Authorization/policyAssignments/"
                  "allowed-locations", "Microsoft.Authorization/policyAssignments", {
                      "displayName": "Allowed locations",
                      "policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/"
                                            "e56962a6-4747-49cd-b67b-bf8b01975c4c",
                      "scope": f"/subscriptions/{CONNECTIVITY_SUB}", "notScopes": [],
                      "parameters": {"listOfAllowedLocations": {"value": [LOCATION, PAIRED_LOCATION]}},
                      "enforcementMode": "Default",
                      "metadata": {"createdOn": "2022-01-10T09:10:00.0000000Z"},
                  }, location=None, etag=False, provisioning=False),
        # the workload subscription exports nothing; the hub exports only two categories
        _resource(f"/subscriptions/{CONNECTIVITY_SUB}/providers/Microsoft.Insights/diagnosticSettings/"
                  "activitylog-to-law", "Microsoft.Insights/diagnosticSettings", {
                      "workspaceId": WORKSPACE, "storageAccountId": None, "eventHubAuthorizationRuleId": None,
                      "eventHubName": None, "serviceBusRuleId": None,
                      "logs": [{"category": c, "categoryGroup": None, "enabled": c in ("Administrative", "Security")}
                               for c in ACTIVITY_LOG_CATEGORIES],
                  }, location=None, etag=False, provisioning=False),
    ]
    return out


def build() -> list[Resource]:
    """The whole reference estate, a fresh list each call (callers may mutate it)."""
    return [*subscriptions(), *resource_groups(), *storage(), *vms(), *spoke(), *hub(), *management(),
            *defender(), *assessments(), *rbac(), *governance()]
