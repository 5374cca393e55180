"""Virtual machines as the platform runs them: the power state (not a property of the VM but of
its instance view, `statuses[].code` PowerState/…), the LRO actions that move it (deallocate,
start, powerOff, restart), the subscription features (Features API) and VM size capabilities
(`Microsoft.Compute/skus`) ARM checks, and the changes ARM refuses unless the VM is deallocated:
`securityProfile.securityType`, `uefiSettings`, `encryptionAtHost`, and a disk's encryption."""

from __future__ import annotations

from typing import Any

from . import guest
from .filters import parse_filter
from .lro import Operations
from .model import clone
from .request import Reply, Request, arm_error, authorize_write, not_found
from .store import key, parse

RUNNING, DEALLOCATED, STOPPED = "PowerState/running", "PowerState/deallocated", "PowerState/stopped"
VM_TYPE, DISK_TYPE = "microsoft.compute/virtualmachines", "microsoft.compute/disks"
# action -> (state while the operation runs, state it ends in)
VM_ACTIONS = {"deallocate": ("PowerState/deallocating", DEALLOCATED),
              "poweroff": ("PowerState/stopping", STOPPED),
              "start": ("PowerState/starting", RUNNING),
              "restart": ("PowerState/starting", RUNNING)}

# Subscription features the platform checks (namespace/name, lower case -> spelling). Every
# subscription starts with them NotRegistered, as a new Azure subscription does.
FEATURES = {"microsoft.compute/encryptionathost": "Microsoft.Compute/EncryptionAtHost",
            "microsoft.compute/usestandardsecuritytype": "Microsoft.Compute/UseStandardSecurityType"}
FEATURE_TYPE = "Microsoft.Features/providers/features"

# VM sizes and the capabilities ARM reads before a security change (values as the skus API
# spells them). Sizes not listed here are not checked.
SIZES: dict[str, dict[str, str]] = {
    "Standard_B2s": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_B2ms": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_D2s_v3": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_D4s_v3": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_D2s_v5": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_D4s_v5": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_E4ds_v5": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_DS1_v2": {"HyperVGenerations": "V1,V2", "EncryptionAtHostSupported": "True"},
    "Standard_A2_v2": {"HyperVGenerations": "V1", "EncryptionAtHostSupported": "False",
                       "TrustedLaunchDisabled": "True"},
    "Standard_A4_v2": {"HyperVGenerations": "V1", "EncryptionAtHostSupported": "False",
                       "TrustedLaunchDisabled": "True"},
}
_SIZES_LOWER = {k.lower(): k for k in SIZES}


def instance_view(entry: dict[str, Any], power: str, hyperv: str | None = None) -> dict[str, Any]:
    state = (entry.get("properties") or {}).get("provisioningState", "Succeeded")
    view: dict[str, Any] = {"statuses": [{"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                                          "displayStatus": f"Provisioning {state.lower()}"},
                                         {"code": power, "level": "Info",
                                          "displayStatus": "VM " + power.split("/")[1]}]}
    if hyperv:
        view["hyperVGeneration"] = hyperv
    agent = guest.vm_agent(entry, power)
    if agent is not None:
        view["vmAgent"] = agent
    return view


def take_platform_state(resources: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str],
                                                                    dict[str, dict[str, str]]]:
    """Split an estate into resources, VM power states and feature registrations. An estate
    gives a VM's power state in its instance view (ARM's `properties.instanceView.statuses` or
    Resource Graph's `properties.extended.instanceView.powerState.code`; default running) and a
    feature as an entry with its Features API id and `properties.state`; a subscription with a VM
    that already has encryption at host has that feature registered."""
    out: list[dict[str, Any]] = []
    power: dict[str, str] = {}
    features: dict[str, dict[str, str]] = {}
    for res in resources:
        rid = res.get("id") if isinstance(res, dict) else None
        low = rid.lower() if isinstance(rid, str) else ""
        if "/providers/microsoft.features/providers/" in low:
            p = low.strip("/").split("/")
            name = f"{p[-3]}/{p[-1]}"
            state = (res.get("properties") or {}).get("state")
            if isinstance(state, str):
                features.setdefault(p[1], {})[name] = state
            continue
        if isinstance(rid, str) and parse(rid).type.lower() == VM_TYPE and isinstance(res.get("properties"), dict):
            props = res["properties"]
            code = _estate_power(props)
            if "instanceView" in props or "extended" in props:
                res = clone(res)
                res["properties"].pop("instanceView", None)
                res["properties"].pop("extended", None)
            if code and code != RUNNING:
                power[key(rid)] = code
            if (props.get("securityProfile") or {}).get("encryptionAtHost") is True:
                # ARM let this VM exist only with the feature registered
                features.setdefault((parse(rid).subscription or "").lower(), {}).setdefault(
                    "microsoft.compute/encryptionathost", "Registered")
        out.append(res)
    return out, power, features


def _estate_power(props: dict[str, Any]) -> str | None:
    for view in (props.get("instanceView"), (props.get("extended") or {}).get("instanceView")):
        if not isinstance(view, dict):
            continue
        code = (view.get("powerState") or {}).get("code") if isinstance(view.get("powerState"), dict) else None
        for status in view.get("statuses") or []:
            if isinstance(status, dict) and str(status.get("code", "")).startswith("PowerState/"):
                code = status["code"]
        if isinstance(code, str) and code.lower() in {c.lower() for c in (RUNNING, DEALLOCATED, STOPPED)}:
            return next(c for c in (RUNNING, DEALLOCATED, STOPPED) if c.lower() == code.lower())
    return None


def _security(vm: dict[str, Any] | None) -> dict[str, Any]:
    """The security settings ARM compares, with absent spelled as the platform default."""
    sp = ((vm or {}).get("properties") or {}).get("securityProfile") or {}
    uefi = sp.get("uefiSettings") or {}
    return {"securityProfile.securityType": str(sp.get("securityType") or "Standard").lower(),
            "securityProfile.uefiSettings": {k: bool(v) for k, v in uefi.items() if v},
            "securityProfile.encryptionAtHost": bool(sp.get("encryptionAtHost"))}


def _disk_encryption(disk: dict[str, Any] | None) -> tuple[str, str]:
    enc = ((disk or {}).get("properties") or {}).get("encryption") or {}
    return (str(enc.get("type") or "EncryptionAtRestWithPlatformKey").lower(),
            str(enc.get("diskEncryptionSetId") or "").lower())


def _vm_disk_sets(vm: dict[str, Any] | None) -> dict[str, str]:
    """Disk (name or id) -> disk encryption set id, as a VM's storageProfile names them."""
    storage = ((vm or {}).get("properties") or {}).get("storageProfile") or {}
    out = {}
    for disk in [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]:
        if not isinstance(disk, dict):
            continue
        md = disk.get("managedDisk") or {}
        des = (md.get("diskEncryptionSet") or {}).get("id") if isinstance(md, dict) else None
        ident = str(md.get("id") or disk.get("name") or disk.get("lun") or "") if isinstance(md, dict) else ""
        out[ident.lower()] = str(des or "").lower()
    return out


class Power(Operations):
    read_only: bool
    features: dict[str, dict[str, str]]  # subscription key -> feature (ns/name, lower) -> state

    def power_state(self, vm_id: str) -> str:
        return self.power.get(key(vm_id), RUNNING)

    def _running_action(self, vm_key: str) -> str | None:
        for op in self.ops.values():
            if op["status"] == "InProgress" and op.get("action") and op["rid"] == vm_key:
                return str(op.get("verb") or "")
        return None

    def _shown_power(self, entry: dict[str, Any]) -> str:
        verb = self._running_action(key(entry["id"]))
        return VM_ACTIONS[verb][0] if verb in VM_ACTIONS else self.power_state(entry["id"])

    def _os_disk_generation(self, vm: dict[str, Any]) -> str | None:
        """The OS disk's hyperVGeneration (what the image was), None when the sandbox has no disk."""
        os_disk = (((vm.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {})
        disk_id = (os_disk.get("managedDisk") or {}).get("id") if isinstance(os_disk, dict) else None
        disk = self.store.get(disk_id) if isinstance(disk_id, str) and disk_id else None
        if disk is None:
            return None
        return str((disk.get("properties") or {}).get("hyperVGeneration") or "V1")

    def vm_instance_view(self, entry: dict[str, Any]) -> dict[str, Any]:
        return instance_view(entry, self._shown_power(entry), self._os_disk_generation(entry))

    # ---- actions and views -------------------------------------------------------------
    def _vm_action(self, ctx: Request) -> Reply:
        resource_id, action = "/" + "/".join(ctx.segs[:-1]), ctx.segs[-1]
        entry = self.store.get(resource_id)
        p = parse(resource_id)
        authorize_write(ctx, self.read_only, p.type, resource_id, action=f"{action}/action")
        if entry is None:
            raise not_found(resource_id)
        verb = action.lower()
        if p.type.lower() != VM_TYPE or verb not in VM_ACTIONS:
            raise arm_error(400, "InvalidResourceOperation", f"The action '{action}' is not supported by the sandbox.")
        self._check_busy(entry["id"])
        before_power = self.power.get(key(entry["id"]))
        if verb == "restart" and self.power_state(entry["id"]) != RUNNING:
            raise arm_error(409, "OperationNotAllowed",
                            f"Operation 'Restart' is not allowed on VM '{entry['name']}' since the VM is "
                            f"{self.power_state(entry['id']).split('/')[1]}. Start the VM instead.")
        before = self._snapshot([key(entry["id"])])
        self.power[key(entry["id"])] = VM_ACTIONS[verb][1]
        ctx.dirty = True
        return self._start_op(ctx, key(entry["id"]), "location", before, delete=True, action=True,
                              extra={"verb": verb, "power_before": before_power})

    def _instance_view(self, ctx: Request) -> Reply:
        resource_id = "/" + "/".join(ctx.segs[:-1])
        entry = self.store.get(resource_id)
        if entry is None:
            raise not_found(resource_id)
        return Reply(200, self.vm_instance_view(entry))

    # ---- the Features API --------------------------------------------------------------
    def feature_state(self, subscription: str, feature: str) -> str:
        return self.features.get(subscription.lower(), {}).get(feature.lower(), "NotRegistered")

    def _feature_body(self, sub: str, feature: str) -> dict[str, Any]:
        name = FEATURES.get(feature.lower(), feature)
        ns, _, short = name.partition("/")
        return {"id": f"/subscriptions/{sub}/providers/Microsoft.Features/providers/{ns}/features/{short}",
                "name": name, "type": FEATURE_TYPE, "properties": {"state": self.feature_state(sub, feature)}}

    def _feature_name(self, ctx: Request) -> str:
        # /subscriptions/{s}/providers/Microsoft.Features/providers/{ns}/features/{name}[/register]
        feature = f"{ctx.low[5]}/{ctx.low[7]}"
        if feature not in FEATURES:
            raise arm_error(404, "FeatureNotFound",
                            f"The feature '{ctx.segs[7]}' could not be found in namespace '{ctx.segs[5]}'.")
        return feature

    def _get_feature(self, ctx: Request) -> Reply:
        feature = self._feature_name(ctx)
        return Reply(200, self._feature_body(ctx.segs[1], feature))

    def _list_features(self, ctx: Request) -> Reply:
        ns = ctx.low[5] if len(ctx.low) > 6 else None
        value = [self._feature_body(ctx.segs[1], f) for f in sorted(FEATURES) if ns is None or f.startswith(ns + "/")]
        return Reply(200, {"value": value})

    def _register_feature(self, ctx: Request) -> Reply:
        feature = self._feature_name(ctx)
        authorize_write(ctx, self.read_only, FEATURE_TYPE, ctx.path, action=f"{ctx.low[-1]}/action")
        # Registration is asynchronous on Azure; here it is done by the time anyone reads it back.
        state = "Registered" if ctx.low[-1] == "register" else "Unregistered"
        self.features.setdefault(ctx.low[1], {})[feature] = state
        ctx.dirty = True
        body = self._feature_body(ctx.segs[1], feature)
        body["properties"]["state"] = "Registering" if state == "Registered" else "Unregistering"
        return Reply(200, body)

    # ---- VM sizes ----------------------------------------------------------------------
    def _skus(self, ctx: Request) -> Reply:
        flt = ctx.query.get("$filter", "")
        parse_filter("microsoft.compute/skus", flt)  # 400 for anything but location eq '…'
        locations = sorted({str(e.get("location") or "").lower() for k in self.store.of_type("Microsoft.Compute/virtualMachines")
                            if (e := self.store.entries[k]) and (parse(e["id"]).subscription or "").lower() == ctx.low[1]}
                           - {""}) or ["westeurope"]
        if "location eq" in flt.lower() and "'" in flt:
            wanted = flt.split("'")[1].lower()
            locations = [loc for loc in locations if loc == wanted] or [wanted]
        value = []
        for name, caps in SIZES.items():
            family = name.split("_")[1]
            value.append({"resourceType": "virtualMachines", "name": name, "tier": "Standard",
                          "size": name.split("_", 1)[1], "family": f"standard{family}Family",
                          "locations": locations,
                          "locationInfo": [{"location": loc, "zones": ["1", "2", "3"]} for loc in locations],
                          "capabilities": [{"name": k, "value": v} for k, v in caps.items()],
                          "restrictions": []})
        return Reply(200, {"value": value})

    # ---- what ARM checks before a VM or disk write ---------------------------------------
    def _vm_rules(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        old_sec, new_sec = _security(existing), _security(new)
        size = str(((new.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize") or "")
        caps = SIZES.get(_SIZES_LOWER.get(size.lower(), ""), {})
        sub = parse(new["id"]).subscription or ""
        eah = "securityProfile.encryptionAtHost"
        if new_sec[eah] and not old_sec[eah]:
            if self.feature_state(sub, "microsoft.compute/encryptionathost") != "Registered":
                raise arm_error(400, "InvalidParameter",
                                f"The property '{eah}' is not valid because the 'Microsoft.Compute/EncryptionAtHost' "
                                "feature is not enabled for this subscription.", {"x-ms-error-target": eah})
            if caps.get("EncryptionAtHostSupported") == "False":
                raise arm_error(400, "InvalidParameter",
                                f"Encryption at host is not supported for the VM size '{size}'.")
        tl = "securityProfile.securityType"
        if new_sec[tl] == "trustedlaunch" and old_sec[tl] != "trustedlaunch":
            if caps.get("TrustedLaunchDisabled") == "True":
                raise arm_error(400, "InvalidParameter",
                                f"Trusted Launch is not supported for the VM size '{size}'.")
            gen = self._os_disk_generation(new)
            if gen is not None and gen.upper() != "V2":
                raise arm_error(400, "InvalidParameter",
                                f"Security type 'TrustedLaunch' needs a Generation 2 image; the OS disk of "
                                f"'{new['name']}' is HyperVGeneration '{gen}'.")
        if existing is not None and old_sec[tl] == "trustedlaunch" and new_sec[tl] == "standard" \
                and self.feature_state(sub, "microsoft.compute/usestandardsecuritytype") != "Registered":
            raise arm_error(400, "InvalidParameter",
                            "Changing the security type from 'TrustedLaunch' to 'Standard' needs the subscription "
                            "feature 'Microsoft.Compute/UseStandardSecurityType' registered.")
        if existing is None:
            return
        changed = [p for p in old_sec if old_sec[p] != new_sec[p]]
        sets_old, sets_new = _vm_disk_sets(existing), _vm_disk_sets(new)
        if any(sets_new.get(d, "") != sets_old.get(d, "") for d in set(sets_new) & set(sets_old)):
            changed.append("storageProfile.*.managedDisk.diskEncryptionSet")
        state = self.power_state(existing["id"])
        if changed and state != DEALLOCATED:
            raise self._needs_deallocation(existing["name"], changed[0], state)

    def _disk_rules(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if existing is None or _disk_encryption(existing) == _disk_encryption(new):
            return
        vm_id = existing.get("managedBy")
        if not isinstance(vm_id, str) or self.store.get(vm_id) is None:
            return  # an unattached disk can be re-encrypted at any time
        state = self.power_state(vm_id)
        if state != DEALLOCATED:
            raise self._needs_deallocation(parse(vm_id).name, "encryption", state, disk=existing["name"])

    @staticmethod
    def _needs_deallocation(vm: str, prop: str, state: str, disk: str | None = None) -> Reply:
        what = f"disk '{disk}' property '{prop}'" if disk else f"property '{prop}'"
        return arm_error(409, "OperationNotAllowed",
                         f"Changing {what} is not allowed while the VM '{vm}' is "
                         f"{state.split('/')[1]}: the VM must be deallocated first (POST …/deallocate), "
                         "then started again after the change.")
