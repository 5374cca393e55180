"""How each resource provider answers, as one table instead of if-chains: the long-running
operation pattern per method, the status of a synchronous create, whether it keeps
`provisioningState` and an etag. A type's entry wins over its namespace's (`profile()`).

LRO kinds (azure-sdk.md §2): "async" answers 200/201 with the body and an Azure-AsyncOperation
monitor; "location" answers 202 with a Location monitor that ends in the resource (or 204 for a
delete); "async-location" answers 202 with both, the Azure-AsyncOperation status and the Location
result (204 for a delete), as Network's deletes do (final-state-via: location); None is synchronous."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    create_lro: str | None = None  # a PUT that creates
    update_lro: str | None = None  # a PUT over an existing resource
    patch_lro: str | None = None
    delete_lro: str | None = None  # None: 200 at once
    sync_create_status: int = 201  # a synchronous create (some providers say 200 whatever happened)
    sync_update_status: int = 200  # a synchronous update (role definitions say 201 every time)
    provisioning_state: bool = False  # the provider keeps properties.provisioningState
    etag: bool = True  # the provider returns an etag and honours If-Match (else both are ignored)
    # What a null in a PATCH does: "removes" (JSON merge patch) or "ignored" (the provider reads
    # null as "not given": the property keeps its value; notes §2).
    patch_null: str = "removes"
    put_keeps: tuple[str, ...] = ()  # properties a PUT that omits them keeps (storage: sasPolicy)
    normalises: bool = False  # enum values come back in the spec's casing, location in ARM's form
    # platform limits (notes §3): how many of the type one parent resource, or one region of a
    # subscription, may have (None: no limit the sandbox enforces)
    max_per_parent: int | None = None
    max_per_region: int | None = None
    delete_returns_body: bool = False  # a synchronous DELETE answers 200 with what it deleted

    def lro(self, method: str, created: bool) -> str | None:
        if method == "PATCH":
            return self.patch_lro
        if method == "DELETE":
            return self.delete_lro
        return self.create_lro if created else self.update_lro


# Network's DELETE examples document 202 with Azure-AsyncOperation and Location (NetworkSecurityGroupDelete)
_NETWORK = Profile(create_lro="async", update_lro="async", delete_lro="async-location", provisioning_state=True,
                   normalises=True)
# compute: `encryptionAtHost: null` leaves it on; only an explicit false turns it off
_COMPUTE = Profile(create_lro="async", update_lro="async", patch_lro="async", delete_lro="location",
                   provisioning_state=True, patch_null="ignored", normalises=True)
_COMPUTE_DISKS = replace(_COMPUTE, create_lro="location", update_lro="location", patch_lro="location")
_STORAGE = Profile(sync_create_status=200, provisioning_state=True, patch_null="ignored", normalises=True)

PROFILES: dict[str, Profile] = {
    "microsoft.network": _NETWORK,
    "microsoft.network/networkwatchers": replace(_NETWORK, create_lro=None, update_lro=None, max_per_region=1),
    "microsoft.compute": _COMPUTE,
    "microsoft.compute/disks": _COMPUTE_DISKS,
    "microsoft.compute/snapshots": _COMPUTE_DISKS,
    "microsoft.storage": _STORAGE,
    # no etag on an account (If-Match is ignored); a PUT that omits sasPolicy keeps it
    "microsoft.storage/storageaccounts": replace(_STORAGE, create_lro="location", etag=False,
                                                put_keeps=("sasPolicy",)),
    # containers and shares do carry an etag (BlobContainersList, FileSharesList examples)
    "microsoft.storage/storageaccounts/blobservices/containers": _STORAGE,
    "microsoft.storage/storageaccounts/fileservices/shares": _STORAGE,
    # Security, Insights and Authorization resources carry no etag (their REST examples and
    # models have none): If-Match means nothing there
    "microsoft.security": Profile(sync_create_status=200, etag=False),
    # a JIT policy comes back with provisioningState (CreateJitNetworkAccessPolicy_example)
    "microsoft.security/locations/jitnetworkaccesspolicies": Profile(sync_create_status=200, etag=False,
                                                                     provisioning_state=True),
    "microsoft.insights": Profile(sync_create_status=200, etag=False),
    "microsoft.insights/diagnosticsettings": Profile(sync_create_status=200, etag=False, max_per_parent=5),
    "microsoft.authorization": Profile(etag=False),
    "microsoft.resources/resourcegroups": Profile(etag=False),  # the ResourceGroup model has no etag
    # Authorization answers a DELETE with the deleted definition or assignment (RoleDefinitions_Delete)
    "microsoft.authorization/roledefinitions": Profile(sync_update_status=201, delete_returns_body=True,
                                                       etag=False),
    "microsoft.authorization/roleassignments": Profile(delete_returns_body=True, etag=False),
}
DEFAULT = Profile()


def profile(rtype: str) -> Profile:
    """The profile for a (lower- or mixed-case) resource type: the longest listed prefix wins."""
    parts = rtype.lower().split("/")
    for n in range(len(parts), 0, -1):
        found = PROFILES.get("/".join(parts[:n]))
        if found is not None:
            return found
    return DEFAULT


@dataclass(frozen=True)
class NameRule:
    """A resource name rule: length bounds and a pattern (Learn: "Naming rules and restrictions
    for Azure resources"); `text` is the rule as ARM's message states it."""

    low: int
    high: int
    pattern: str
    text: str

    def accepts(self, name: str) -> bool:
        return self.low <= len(name) <= self.high and re.fullmatch(self.pattern, name) is not None


_NETWORK_NAME = NameRule(1, 80, r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9_])?",
                         "The name can be up to 80 characters long. It must begin with a word character, and it "
                         "must end with a word character or with '_'. The name may contain word characters or "
                         "'.', '-', '_'.")
_ANY_NAME = NameRule(1, 1024, r"(?s).+", "")  # DNS zones and their record sets follow DNS, not ARM names
NAME_RULES: dict[str, NameRule] = {
    "microsoft.network": _NETWORK_NAME,
    "microsoft.network/privatednszones": _ANY_NAME,
    "microsoft.network/dnszones": _ANY_NAME,
    "microsoft.storage/storageaccounts": NameRule(
        3, 24, r"[a-z0-9]+", "Storage account names must be between 3 and 24 characters in length and use numbers "
                             "and lower-case letters only."),
    "microsoft.compute/virtualmachines": NameRule(
        1, 64, r"[^\\/\"'\[\]:|<>+=;,?*@&_\s]([^\\/\"'\[\]:|<>+=;,?*@&\s]*[^\\/\"'\[\]:|<>+=;,?*@&.\s-])?",
        "A virtual machine name is 1 to 64 characters, cannot contain \\/\"'[]:|<>+=;,?*@& or spaces, cannot "
        "begin with '_' and cannot end with '.' or '-'."),
    "microsoft.compute/disks": NameRule(
        1, 80, r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?",
        "A disk name is 1 to 80 letters, digits, '_', '.' or '-', beginning with a letter, digit or '_' and ending "
        "with a letter, digit or '_'."),
    "microsoft.keyvault/vaults": NameRule(
        3, 24, r"[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]",
        "A vault name is 3 to 24 letters, digits and '-', beginning with a letter, ending with a letter or digit, "
        "without consecutive '-'."),
    "microsoft.operationalinsights/workspaces": NameRule(
        4, 63, r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]",
        "A workspace name is 4 to 63 letters, digits and '-', beginning and ending with a letter or digit."),
}
# A resource group (checked by ARM itself): 1-90 word characters, '-', '.', '(', ')', not ending in '.'.
RESOURCE_GROUP_NAME = NameRule(1, 90, r"[-\w.()]*[-\w()]",
                               "Resource group names only allow up to 90 characters and can only include "
                               "alphanumeric, underscore, parentheses, hyphen, period (except at end).")


def name_rule(rtype: str) -> NameRule | None:
    parts = rtype.lower().split("/")
    for n in range(len(parts), 0, -1):
        found = NAME_RULES.get("/".join(parts[:n]))
        if found is not None:
            return found
    return None
