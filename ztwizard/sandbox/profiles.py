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
    etag: bool = True  # the provider returns an etag and honours If-Match (else both are ignored)
    # What a null in a PATCH does: "removes" (JSON merge patch) or "ignored" (the provider reads
    # null as "not given": the property keeps its value; notes §2).
    patch_null: str = "removes"
    put_keeps: tuple[str, ...] = ()  # properties a PUT that omits them keeps (storage: sasPolicy)
    normalises: bool = False  # enum values come back in the spec's casing, location in ARM's form

    def lro(self, method: str, created: bool) -> str | None:
        if method == "PATCH":
            return self.patch_lro
        if method == "DELETE":
            return self.delete_lro
        return self.create_lro if created else self.update_lro


_NETWORK = Profile(create_lro="async", update_lro="async", delete_lro="location", provisioning_state=True,
                   normalises=True)
# compute: `encryptionAtHost: null` leaves it on; only an explicit false turns it off
_COMPUTE = Profile(create_lro="async", update_lro="async", patch_lro="async", delete_lro="location",
                   provisioning_state=True, patch_null="ignored", normalises=True)
_COMPUTE_DISKS = replace(_COMPUTE, create_lro="location", update_lro="location", patch_lro="location")
_STORAGE = Profile(sync_create_status=200, provisioning_state=True, patch_null="ignored", normalises=True)

PROFILES: dict[str, Profile] = {
    "microsoft.network": _NETWORK,
    "microsoft.compute": _COMPUTE,
    "microsoft.compute/disks": _COMPUTE_DISKS,
    "microsoft.compute/snapshots": _COMPUTE_DISKS,
    "microsoft.storage": _STORAGE,
    # no etag on an account (If-Match is ignored); a PUT that omits sasPolicy keeps it
    "microsoft.storage/storageaccounts": replace(_STORAGE, create_lro="location", etag=False,
                                                put_keeps=("sasPolicy",)),
    "microsoft.security": Profile(sync_create_status=200),
    "microsoft.security/pricings": Profile(sync_create_status=200, etag=False),
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
