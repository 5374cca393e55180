"""How each resource provider answers, as one table instead of if-chains: the long-running
operation pattern per method, the status of a synchronous create, whether it keeps
`provisioningState` and an etag. A type's entry wins over its namespace's (`profile()`).

LRO kinds (azure-sdk.md §2): "async" answers 200/201 with the body and an Azure-AsyncOperation
monitor; "location" answers 202 with a Location monitor that ends in the resource (or 204 for a
delete); None is synchronous."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    create_lro: str | None = None  # a PUT that creates
    update_lro: str | None = None  # a PUT over an existing resource
    patch_lro: str | None = None
    delete_lro: str | None = None  # None: 200 at once
    sync_create_status: int = 201  # a synchronous create (some providers say 200 whatever happened)
    provisioning_state: bool = False  # the provider keeps properties.provisioningState
    etag: bool = True  # the provider returns an etag and honours If-Match

    def lro(self, method: str, created: bool) -> str | None:
        if method == "PATCH":
            return self.patch_lro
        if method == "DELETE":
            return self.delete_lro
        return self.create_lro if created else self.update_lro


_NETWORK = Profile(create_lro="async", update_lro="async", delete_lro="location", provisioning_state=True)
_COMPUTE = Profile(create_lro="async", update_lro="async", patch_lro="async", delete_lro="location",
                   provisioning_state=True)
_COMPUTE_DISKS = replace(_COMPUTE, create_lro="location", update_lro="location", patch_lro="location")
_STORAGE = Profile(sync_create_status=200, provisioning_state=True)

PROFILES: dict[str, Profile] = {
    "microsoft.network": _NETWORK,
    "microsoft.compute": _COMPUTE,
    "microsoft.compute/disks": _COMPUTE_DISKS,
    "microsoft.compute/snapshots": _COMPUTE_DISKS,
    "microsoft.storage": _STORAGE,
    "microsoft.storage/storageaccounts": replace(_STORAGE, create_lro="location"),
    "microsoft.security": Profile(sync_create_status=200),
    "microsoft.insights": Profile(sync_create_status=200),
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
