"""How each check of the catalog becomes policy: the built-in definitions steps.md names (by their
ids, with the parameters the session chose), a custom definition where no built-in exists but one
field or one related resource shows the verdict, a pointer where another check's definition covers
it, or the reason it cannot be expressed as policy at all.

Every check of the catalog has exactly one entry (a test holds the catalog and this table in step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STORAGE_ACCOUNT_CONTRIBUTOR = "/providers/Microsoft.Authorization/roleDefinitions/17d1049b-9a84-46fb-8f53-869881c3d3ab"

# check id -> the built-in definitions (GUIDs) steps.md names for it.
BUILTIN: dict[str, tuple[str, ...]] = {
    "storage-1a": ("404c3081-a854-4457-ae30-26a93ef643f9",),
    "storage-1b": ("fe83a0eb-a853-422d-aac2-1bffd182c5d0",),
    "storage-1c": ("4fa4b6c0-31ca-4c0d-b10d-24b96f62a751",),
    "storage-1d": ("8c6a50c6-9ffd-4ae7-986f-5fa6111f9a54",),
    "storage-1g": ("6fac406b-40ca-413b-bf8e-0bf964659c25",),
    "storage-1h": ("4733ea7b-a883-42fe-8cac-97454c2a9e4a",),
    "storage-2b": ("bc1b984e-ddae-40cc-801a-050a030e4fbe",),
    "storage-2c": ("044985bb-afe1-42cd-8a36-9d5d42424537",),
    "storage-3a": ("6edd7eda-6dd8-40f7-810d-67160c639cd9",),
    "storage-3b": ("b2982f36-99f2-4db5-8eff-283140c09693",),
    "storage-3c": ("34c877ad-507e-4c82-993e-3452a6e0ad3c",),
    "storage-3d": ("60d21c4f-21a3-4d94-85f4-b924e6aeeda4",),
    "storage-4a": ("640d2586-54d2-465f-877f-9ffc1d2109f4",),
    "storage-4b": ("640d2586-54d2-465f-877f-9ffc1d2109f4",),
    "vm-2a": ("a451c1ef-c6ca-483d-87ed-f49761e3ffb5",),
    "vm-2b": ("a451c1ef-c6ca-483d-87ed-f49761e3ffb5",),
    "vm-2c": ("e4953962-5ae4-43eb-bb92-d66fd5563487",),
    "vm-3a": ("c95b54ad-0614-4633-ab29-104b01235cbf",),
    "vm-3b": ("97566dd7-78ae-4997-8b36-1c7bfe0d8121", "b1bb3592-47b8-4150-8db0-bfdcc2c8965b"),
    "vm-3c": ("1c30f9cd-b84c-49cc-aa2c-9288447cc3b3",),
    "vm-3d": ("1cb4d9c2-f88f-4069-bee0-dba239a57b09", "672fe5a1-2fcd-42d7-b85d-902b6e28c6ff"),
    "vm-4a": ("ca91455f-eace-4f96-be59-e6e2c35b4816",),
    "vm-4b": ("702dd420-7fcc-42c5-afe8-4026edd20fe0",),
    "vm-4c": ("fc4d8e41-e223-45ea-9bf5-eada37891d87",),
    "vm-4d": ("8405fdab-1faf-48aa-b702-999c9c172094",),
    "vm-6b": ("83a86a26-fd1f-447c-b59d-e51f44264114",),
    "vm-6c": ("22730e10-96f6-4aac-ad84-9383d35b5917",),
    "vm-7a": ("9b597639-28e4-48eb-b506-56b05d366257",),
    "vm-7b": ("bd876905-5b84-4f73-ab2d-2e7a7c4568d9",),
    "vm-7c": ("f85bf3e0-d513-442e-89c3-1784ad63382b",),
    "vm-8a": ("4da35fc9-c9e7-4960-aec9-797fe7d9051d",),
    "vm-8b": ("da56d295-2889-41ce-a4cd-6f50fb93aa68",),
    "vm-8c": ("b0f33259-77d7-4c9e-aac6-3aabcfae693c",),
    "vm-8d": ("501541f7-f7e7-4cd6-868c-4190fdad3ac9",),
    "spoke-1a": ("a451c1ef-c6ca-483d-87ed-f49761e3ffb5",),
    "spoke-2c": ("2465583e-4e78-4c15-b6be-a36cbc7c8b0f",),
    "spoke-3a": ("e71308d3-144b-4262-b144-efdc3cc90517",),
    "spoke-5a": ("9daedab3-fb2d-461e-b861-71790eead4f6",),
    "spoke-5c": ("f6de0be7-9a8a-4b8a-b349-43cf02d22f7c",),
    "spoke-5d": ("4c3c6c5f-0d47-4402-99b8-aa543dd8bcee",),
    "spoke-5e": ("564feb30-bf6a-4854-b4bb-0d2d2d1e6c66",),
    "spoke-5f": ("fc5e4038-4584-4632-8c85-c0448d374b2c",),
    "spoke-7a": ("1f90fc71-a595-4066-8974-d4d0802e8ef0",),
    "hub-1a": ("8c19196d-7fd7-45b2-a9b4-7288f47c769a",),
    "hub-1b": ("794d77cc-fe65-4801-8514-230c0be387a8",),
    "hub-1d": ("da79a7e2-8aa1-45ed-af81-ba050c153564",),
    "hub-1h": ("a4490248-cb97-4504-b7fb-f906afdb7437",),
    "hub-1i": ("dfb5ac92-ce74-4dbc-81fa-87243e62d5d3",),
    "hub-2a": ("a7aca53f-2ed4-4466-a25e-0b45ade68efd",),
    "hub-2b": ("94de2ad3-e0c1-4caf-ad78-5d47bbc83d3d",),
    "hub-2d": ("752154a7-1e0f-45c6-a880-ac75a7e4f648",),
    "hub-3b": ("fc5e4038-4584-4632-8c85-c0448d374b2c",),
    "hub-4a": ("1f90fc71-a595-4066-8974-d4d0802e8ef0", "c3d20c29-b36d-48fe-808b-99a87530ad99"),
    "hub-4d": ("b6e2945c-0b7b-40f5-9233-7a5323b5cdc6",),
}


@dataclass(frozen=True)
class Choice:
    """A parameter of a definition that carries what the session chose, as an initiative parameter.

    `check` and `path` say where the session's journal holds the value (the change's body, or its
    resource id when `path` is "id"); `fallback` stands when the session did not choose (None: the
    assignment must give it)."""

    name: str  # the initiative's parameter
    definition: str  # built-in GUID, or the custom definition's check id
    parameter: str  # the definition's own parameter
    check: str
    path: str
    type: str = "String"
    fallback: Any = None
    allowed: tuple[str, ...] = ()


CHOICES: tuple[Choice, ...] = (
    Choice("minimumTlsVersion", "fe83a0eb-a853-422d-aac2-1bffd182c5d0", "minimumTlsVersion", "storage-1b",
           "properties.minimumTlsVersion", fallback="TLS1_2", allowed=("TLS1_0", "TLS1_1", "TLS1_2")),
    Choice("allowedCopyScope", "storage-1e", "allowedCopyScope", "storage-1e", "properties.allowedCopyScope",
           fallback="AAD", allowed=("AAD", "PrivateLink")),
    Choice("ddosPlan", "94de2ad3-e0c1-4caf-ad78-5d47bbc83d3d", "ddosPlan", "hub-2b",
           "properties.ddosProtectionPlan.id"),
    Choice("activityLogWorkspace", "2465583e-4e78-4c15-b6be-a36cbc7c8b0f", "logAnalytics", "spoke-2c",
           "properties.workspaceId"),
    Choice("firewallLogWorkspace", "a4490248-cb97-4504-b7fb-f906afdb7437", "logAnalytics", "hub-1h",
           "properties.workspaceId"),
    Choice("ddosLogWorkspace", "752154a7-1e0f-45c6-a880-ac75a7e4f648", "logAnalytics", "hub-2d",
           "properties.workspaceId"),
    Choice("ddosLogSettingName", "752154a7-1e0f-45c6-a880-ac75a7e4f648", "profileName", "hub-2d", "name",
           fallback="ztwizard-ddos-logs"),
)


@dataclass(frozen=True)
class Custom:
    """A custom definition for a check no built-in covers: `condition` is what makes a resource of
    `type` non-compliant (policy rule syntax), or with `related` an AuditIfNotExists on a related
    resource whose `exists_if` shows compliance. `modify` (operations) only where the check's
    remediation is an in-place PATCH of that field and the role below may make it."""

    type: str
    condition: dict[str, Any] | None = None
    related: str = ""
    related_name: str = ""
    exists_if: dict[str, Any] | None = None
    modify: tuple[dict[str, Any], ...] = ()
    roles: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)


CUSTOM: dict[str, Custom] = {
    "storage-1e": Custom(
        "Microsoft.Storage/storageAccounts",
        condition={"anyOf": [
            {"field": "Microsoft.Storage/storageAccounts/allowedCopyScope", "exists": "false"},
            {"field": "Microsoft.Storage/storageAccounts/allowedCopyScope", "notIn": ["AAD", "PrivateLink"]}]},
        modify=({"operation": "addOrReplace", "field": "Microsoft.Storage/storageAccounts/allowedCopyScope",
                 "value": "[parameters('allowedCopyScope')]"},),
        roles=(STORAGE_ACCOUNT_CONTRIBUTOR,),
        parameters={"allowedCopyScope": {"type": "String", "allowedValues": ["AAD", "PrivateLink"],
                                         "defaultValue": "AAD",
                                         "metadata": {"displayName": "Allowed copy scope"}}}),
    "storage-1f": Custom(
        "Microsoft.Storage/storageAccounts/fileServices",
        condition={"anyOf": [
            {"field": "Microsoft.Storage/storageAccounts/fileServices/protocolSettings.smb.channelEncryption",
             "notIn": ["AES-128-GCM;AES-256-GCM", "AES-256-GCM"]},
            {"field": "Microsoft.Storage/storageAccounts/fileServices/protocolSettings.smb.versions",
             "notIn": ["SMB3.0;SMB3.1.1", "SMB3.1.1"]}]}),
    "storage-4c": Custom(
        "Microsoft.Storage/storageAccounts",
        related="Microsoft.Security/defenderForStorageSettings", related_name="current",
        exists_if={"field": "Microsoft.Security/defenderForStorageSettings/isEnabled", "equals": "true"}),
    "vm-6d": Custom(
        "Microsoft.Compute/virtualMachines",
        related="Microsoft.Compute/virtualMachines/extensions",
        exists_if={"allOf": [
            {"field": "Microsoft.Compute/virtualMachines/extensions/publisher",
             "equals": "Microsoft.Azure.ActiveDirectory"},
            {"field": "Microsoft.Compute/virtualMachines/extensions/type",
             "in": ["AADLoginForWindows", "AADSSHLoginForLinux"]}]}),
    "vm-7d": Custom(
        "Microsoft.Compute/virtualMachines",
        condition={"anyOf": [
            {"field": "Microsoft.Compute/virtualMachines/osProfile.windowsConfiguration.provisionVMAgent",
             "equals": "false"},
            {"field": "Microsoft.Compute/virtualMachines/osProfile.linuxConfiguration.provisionVMAgent",
             "equals": "false"}]}),
    "spoke-4b": Custom(
        "Microsoft.Network/networkInterfaces",
        condition={"count": {"field": "Microsoft.Network/networkInterfaces/ipconfigurations[*]"
                                      ".applicationSecurityGroups[*]"}, "equals": 0}),
    "spoke-5b": Custom(
        "Microsoft.Network/networkSecurityGroups",
        condition={"count": {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*]", "where": {"allOf": [
            {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*].direction", "equals": "Outbound"},
            {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*].access", "equals": "Deny"},
            {"field": "Microsoft.Network/networkSecurityGroups/securityRules[*].priority", "equals": 4096}]}},
            "equals": 0}),
    "hub-1c": Custom(
        "Microsoft.Network/firewallPolicies",
        condition={"field": "Microsoft.Network/firewallPolicies/sku.tier", "notEquals": "Premium"}),
    "hub-1e": Custom(
        "Microsoft.Network/firewallPolicies",
        condition={"field": "Microsoft.Network/firewallPolicies/intrusionDetection.mode", "notEquals": "Deny"}),
    "hub-1f": Custom(
        "Microsoft.Network/firewallPolicies",
        condition={"field": "Microsoft.Network/firewallPolicies/transportSecurity.certificateAuthority"
                            ".keyVaultSecretId", "exists": "false"}),
    "hub-2c": Custom(
        "Microsoft.Network/publicIPAddresses",
        condition={"field": "Microsoft.Network/publicIPAddresses/ddosSettings.protectionMode",
                   "notIn": ["VirtualNetworkInherited", "Enabled"]}),
}

# check id -> the check whose definition already enforces it.
COVERED_BY: dict[str, str] = {
    "storage-2d": "storage-1d",  # the same property (Shared Key off)
    "spoke-6a": "storage-3b",  # a cross-reference to storage-3a/3b, hub-1 and hub-3
}

# check id -> why Azure Policy cannot express it (it evaluates one resource and what hangs off it).
NOT_EXPRESSIBLE: dict[str, str] = {
    "storage-2a": "who holds which role is judged per principal (users vs groups), which policy cannot see",
    "vm-1a": "compares what different resource types share a resource group",
    "vm-5a": "which applications are approved is a person's list",
    "vm-6a": "a Bastion must be reachable from the VM's VNet across peerings",
    "vm-6e": "Conditional Access and MFA are Entra ID settings, not ARM resources",
    "spoke-1b": "whether a custom role fits NetOps is a judgement of its actions",
    "spoke-2a": "compares what different resource types share a resource group",
    "spoke-2b": "who holds which role is judged per principal, which policy cannot see",
    "spoke-3b": "counts the subnets that share one NSG across the VNet",
    "spoke-4a": "one ASG per VM role is a design of roles",
    "spoke-4c": "whether tier rules use ASGs rather than IP lists is an application design",
    "spoke-6b": "app registrations and Conditional Access live in Entra ID, not ARM",
    "spoke-7b": "the secure score is read for prioritisation; there is nothing to enforce",
    "hub-1g": "the TLS-inspection rule depends on the application's FQDNs",
    "hub-1j": "web-category filtering depends on the egress that is allowed",
    "hub-1k": "where an Application Gateway sits compares it with the hub VNet",
    "hub-2e": "metric alerts are separate resources that name the IP, not its children",
    "hub-3a": "the GatewaySubnet routes must match every spoke's prefixes",
    "hub-3c": "spoke-to-spoke peering compares VNets with each other",
    "hub-3d": "firewall rules for on-premises flows are an application design",
    "hub-4b": "it is the assignment of an initiative itself (this export is one)",
    "hub-4c": "reviewing assessments and alerts is a person's work",
}


def kind(check_id: str) -> str:
    """builtin | custom | covered | none."""
    if check_id in BUILTIN:
        return "builtin"
    if check_id in CUSTOM:
        return "custom"
    if check_id in COVERED_BY:
        return "covered"
    return "none"
