"""VM changes that ARM accepts only on a deallocated VM, made under a power guard.

Trusted Launch, Secure Boot, vTPM, encryption at host and a disk's encryption cannot change on a
running VM (notes/arm-platform.md §1). Apply and undo therefore group the changes of one VM (the
VM and its disks) and, before the first of them, record the VM's power state in the journal,
deallocate it, make the changes, and start it again only if it was running (a stopped VM is
stopped again, a deallocated one stays so). Every stage is committed before it is sent, so
`resume` after a crash finds an open guard and puts the VM back in the state it was found in.

Prerequisites are read before anything is written: a change whose feature registration, size
capability or VM generation is missing is skipped with a sentence naming what is missing and how
to get it, instead of failing after the VM was already deallocated."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import journal as J
from . import resource_id as rid
from .armjson import Path, get_path, leaves, parse_path
from .errors import ArmError, OperationTimedOut, ZtwError
from .ports import ArmGateway

log = logging.getLogger(__name__)

VM = "microsoft.compute/virtualmachines"
DISK = "microsoft.compute/disks"

# What ARM refuses to change while the VM runs, by resource type (lower) and path prefix.
OFFLINE_PATHS: dict[str, tuple[Path, ...]] = {
    VM: (("properties", "securityProfile", "securityType"),
         ("properties", "securityProfile", "uefiSettings"),
         ("properties", "securityProfile", "encryptionAtHost")),
    DISK: (("properties", "encryption"),),
}
# Power states that are on the way to another: wait for them to settle before judging.
TRANSITIONS = frozenset({"deallocating", "starting", "stopping", "unknown"})
SETTLE_SECONDS = 300.0

ENCRYPTION_AT_HOST = parse_path("properties.securityProfile.encryptionAtHost")
SECURITY_TYPE = parse_path("properties.securityProfile.securityType")


def _low(path: Path) -> Path:
    return tuple(k.lower() for k in path)


def needs_deallocation(resource_id: str, tree: dict[str, Any] | None) -> bool:
    """Does a write of the properties in `tree` to `resource_id` need its VM deallocated?"""
    prefixes = [_low(p) for p in OFFLINE_PATHS.get(rid.type_of(resource_id).lower(), ())]
    return any(_low(path)[:len(pre)] == pre for path in leaves(tree or {}) for pre in prefixes)


def vm_of(gateway: ArmGateway, resource_id: str, res: dict[str, Any] | None = None) -> str | None:
    """The VM a change to `resource_id` needs deallocated: itself, or the VM a disk is attached to
    (None for an unattached disk, which needs no guard)."""
    rtype = rid.type_of(resource_id).lower()
    if rtype == VM:
        return resource_id
    if rtype == DISK:
        disk = res if res is not None else gateway.read(resource_id)
        owner = (disk or {}).get("managedBy")
        return str(owner) if owner else None
    return None


# ---- prerequisites ---------------------------------------------------------------------------

def _sets(tree: dict[str, Any] | None, path: Path, value: Any) -> bool:
    got = get_path(tree or {}, path)
    if isinstance(value, str) and isinstance(got, str):
        return got.lower() == value.lower()
    return got is value if isinstance(value, bool) else got == value


@dataclass
class Prerequisites:
    """Reads the subscription features, size capabilities and OS disks the VM changes need,
    each once per run."""

    gateway: ArmGateway

    def __post_init__(self) -> None:
        self._features: dict[tuple[str, str], str | None] = {}
        self._disks: dict[str, dict[str, Any] | None] = {}

    def feature(self, subscription: str, namespace: str, name: str) -> str | None:
        key = (subscription.lower(), f"{namespace}/{name}".lower())
        if key not in self._features:
            self._features[key] = self.gateway.feature_state(subscription, namespace, name)
        return self._features[key]

    def _feature_missing(self, subscription: str, namespace: str, name: str, why: str) -> str:
        state = self.feature(subscription, namespace, name)
        if state is None or state.lower() == "registered":
            return ""  # registered, or ARM cannot tell: ARM itself stays the judge
        return (f"the subscription feature {namespace}/{name} is {state}, and {why} needs it registered "
                f"(`az feature register --namespace {namespace} --name {name}`, then "
                f"`az provider register --namespace {namespace}`)")

    def _generation(self, vm: dict[str, Any]) -> str | None:
        disk_id = get_path(vm, "properties.storageProfile.osDisk.managedDisk.id")
        if not disk_id:
            return None
        key = str(disk_id).lower()
        if key not in self._disks:
            self._disks[key] = self.gateway.read(str(disk_id))
        gen = get_path(self._disks[key] or {}, "properties.hyperVGeneration")
        return str(gen) if gen else None

    def missing(self, vm: dict[str, Any] | None, tree: dict[str, Any], *, undo: bool = False) -> list[str]:
        """What is missing for writing `tree` onto the VM `vm` (as ARM holds it now)."""
        if vm is None or rid.type_of(str(vm.get("id", ""))).lower() != VM:
            return []
        sub = rid.subscription_of(str(vm["id"])) or ""
        size = str(get_path(vm, "properties.hardwareProfile.vmSize") or "")
        location = str(vm.get("location") or "")
        caps = self.gateway.sku_capabilities(sub, location, size) if size and location else None
        out: list[str] = []
        if _sets(tree, ENCRYPTION_AT_HOST, True):
            gap = self._feature_missing(sub, "Microsoft.Compute", "EncryptionAtHost", "encryption at host")
            if gap:
                out.append(gap)
            if caps is not None and str(caps.get("EncryptionAtHostSupported", "False")).lower() != "true":
                out.append(f"the size {size} does not support encryption at host in {location} "
                           "(capability EncryptionAtHostSupported); resize the VM to a size that does")
        if _sets(tree, SECURITY_TYPE, "TrustedLaunch"):
            gen = self._generation(vm)
            if gen is not None and gen.upper() != "V2":
                out.append(f"the VM is Generation {gen.upper().lstrip('V')} and Trusted Launch needs Generation 2 "
                           "(redeploy from a Gen2 image, or convert the OS disk with the Gen1-to-Trusted-Launch "
                           "upgrade first)")
            if caps is not None and str(caps.get("TrustedLaunchDisabled", "False")).lower() == "true":
                out.append(f"the size {size} does not support Trusted Launch in {location} (capability "
                           "TrustedLaunchDisabled is True); resize the VM to a size that does")
            if caps is not None and "HyperVGenerations" in caps and "V2" not in caps["HyperVGenerations"].upper():
                out.append(f"the size {size} offers no Generation 2 in {location} (capability HyperVGenerations "
                           f"is {caps['HyperVGenerations']}); resize the VM to a Gen2 size")
        if undo and _sets(tree, SECURITY_TYPE, "Standard"):
            gap = self._feature_missing(sub, "Microsoft.Compute", "UseStandardSecurityType",
                                        "going back from Trusted Launch to Standard")
            if gap:
                out.append(gap)
        return out


PREREQUISITE = "prerequisite missing"


def prerequisite_note(missing: Sequence[str]) -> str:
    return f"{PREREQUISITE}: " + "; ".join(missing) + "; nothing was sent"


# ---- batching ----------------------------------------------------------------------------------

T = TypeVar("T")


def batch_by_vm(items: Sequence[T], vm: Callable[[T], str | None], can_pass: Callable[[T, T], bool]) -> list[T]:
    """`items` with the ones of the same VM moved up behind the VM's first one, so one
    deallocation covers them; an item stays where it is when it may not pass one in between
    (`can_pass(moving, other)`: dependencies)."""
    out: list[T] = list(items)
    i = 0
    while i < len(out):
        key = (vm(out[i]) or "").lower()
        if not key:
            i += 1
            continue
        end = i + 1
        while end < len(out) and (vm(out[end]) or "").lower() == key:
            end += 1
        j = end
        while j < len(out):
            if (vm(out[j]) or "").lower() == key and all(can_pass(out[j], out[k]) for k in range(end, j)):
                out.insert(end, out.pop(j))
                end += 1
            j += 1
        i = end
    return out


# ---- the guard ---------------------------------------------------------------------------------

def settled_power(gateway: ArmGateway, vm_id: str, timeout: float = SETTLE_SECONDS) -> str:
    """The VM's power state once it is not on its way to another one."""
    delay, deadline = 0.1, time.monotonic() + timeout
    while True:
        state = gateway.power_state(vm_id)
        if state not in TRANSITIONS or time.monotonic() >= deadline:
            return state
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


_POWER_AFTER = {"start": "running", "powerOff": "stopped", "deallocate": "deallocated"}


def act(gateway: ArmGateway, vm_id: str, action: str) -> None:
    """`action` on the VM; when its answer is lost (a dropped connection, a throttle or server
    error after the retries) the VM's power state says whether it landed: a POST is not retried."""
    try:
        gateway.vm_action(vm_id, action)
    except OperationTimedOut:
        raise  # still under way: resume settles it
    except ZtwError as exc:
        if isinstance(exc, ArmError) and exc.status not in (408, 429, 500, 502, 503, 504):
            raise
        if settled_power(gateway, vm_id) != _POWER_AFTER[action]:
            raise
        log.info("%s: %s landed although its answer was lost", vm_id, action)


def restore(gateway: ArmGateway, journal: J.Journal, session_id: str, vm_id: str, original: str) -> str:
    """Put the VM back in `original` (running: start; stopped: start and power off; else leave
    it) and close its guard; returns what was done."""
    now = settled_power(gateway, vm_id)
    done = f"left {now} (it was {original})"
    if original in ("running", "stopped") and now != original:
        journal.record_power(session_id, vm_id, J.STARTING)
        if now != "running":
            act(gateway, vm_id, "start")
        if original == "stopped":
            act(gateway, vm_id, "powerOff")
        done = f"{'started' if original == 'running' else 'started and stopped'} again (it was {original})"
    journal.record_power(session_id, vm_id, J.RESTORED)
    log.info("%s: %s", vm_id, done)
    return done


class PowerGuard:
    """Holds at most one VM deallocated at a time for the changes that need it."""

    def __init__(self, gateway: ArmGateway, journal: J.Journal, session_id: str,
                 on_stage: Callable[[str, str], None] | None = None) -> None:
        self.gateway, self.journal, self.session_id = gateway, journal, session_id
        self.current: str | None = None
        self._original = ""
        self._on_stage = on_stage or (lambda vm, msg: None)

    def hold(self, vm_id: str) -> None:
        """Make sure `vm_id` is deallocated, recording first what it was."""
        if self.current is not None and self.current.lower() == vm_id.lower():
            return
        self.release()
        opened = {g.vm_id.lower(): g for g in self.journal.power_guards(self.session_id)}
        # A guard this session left open (resume could not restore it) keeps its original state.
        prior = opened.get(vm_id.lower())
        original = prior.original if prior else settled_power(self.gateway, vm_id)
        self.journal.record_power(self.session_id, vm_id, J.POWER_WAS, original=original)
        self.current, self._original = vm_id, original
        if self.gateway.power_state(vm_id) != "deallocated":
            self.journal.record_power(self.session_id, vm_id, J.DEALLOCATING)
            self._on_stage(vm_id, f"deallocating (it is {original})")
            act(self.gateway, vm_id, "deallocate")
        self.journal.record_power(self.session_id, vm_id, J.DEALLOCATED)
        self._on_stage(vm_id, "deallocated")

    def release(self) -> None:
        """Put the held VM back as it was found."""
        if self.current is None:
            return
        vm_id, self.current = self.current, None
        done = restore(self.gateway, self.journal, self.session_id, vm_id, self._original)
        self._on_stage(vm_id, done)

    def release_quietly(self) -> None:
        """On the way out of an interrupted run: try to restore; resume does it when this fails."""
        try:
            self.release()
        except Exception as exc:  # noqa: BLE001 - the interruption that got us here is what counts
            log.warning("could not restore the power state of a VM (resume will): %s", exc)


def restore_open_guards(gateway: ArmGateway, journal: J.Journal, session_id: str) -> list[tuple[str, str]]:
    """After a crash: every VM this session left deallocated (or on its way) back as it was."""
    return [(g.vm_id, restore(gateway, journal, session_id, g.vm_id, g.original))
            for g in journal.power_guards(session_id)]
