"""Writes: PUT (replace; ARM-computed properties kept), PATCH (JSON merge patch), DELETE, with
their preconditions (authorization, If-Match/If-None-Match, a busy resource, the body's schema),
inline children that replace the child set, and the references ARM keeps in both directions.
Writes apply at once and are saved before the answer leaves; a long-running operation then only
moves provisioningState from Creating/Updating to Succeeded."""

from __future__ import annotations

import uuid
from typing import Any

from . import keyvault, schema
from .defender import Defender
from .limits import Limits, security_rule_refusal
from .model import (
    BACK_LINK_PROP,
    INLINE_CHILDREN,
    READ_ONLY_INLINE,
    RG_TYPE,
    SERVER_COMPUTED,
    back_links,
    clone,
    inline_holder,
    is_inline_child,
)
from .profiles import RESOURCE_GROUP_NAME, profile
from .reads import Reads
from .request import Reply, Request, arm_error, authorize_write, bare_etag, not_found
from .store import key, new_etag, normalize_entry, parse


def merge_patch(base: dict[str, Any], patch: dict[str, Any], *, null_removes: bool = True) -> dict[str, Any]:
    """JSON merge patch: objects merge key by key, anything else replaces; null removes, or is
    ignored where the provider reads it as "not given"."""
    for k, v in patch.items():
        if v is None:
            if null_removes:
                base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_patch(base[k], v, null_removes=null_removes)
        else:
            base[k] = clone(v)
    return base


def restore(new: dict[str, Any], old: dict[str, Any], trail: tuple[str | int, ...]) -> None:
    """Copy the value at `trail` (keys and list indices) from `old` into `new`, where both have
    the containers on the way."""
    src: Any = old
    dst: Any = new
    for step in trail[:-1]:
        if isinstance(step, int):
            if not (isinstance(src, list) and isinstance(dst, list) and step < len(src) and step < len(dst)):
                return
        elif not (isinstance(src, dict) and isinstance(dst, dict) and step in src and step in dst):
            return
        src, dst = src[step], dst[step]
    last = trail[-1]
    if isinstance(last, str) and isinstance(src, dict) and isinstance(dst, dict) and last in src:
        dst[last] = clone(src[last])


class Writes(Reads, Defender, Limits):
    """`write_rules`: resource type (lower case, "*" for every type) -> names of methods
    `(ctx, existing, new)` that refuse a PUT/PATCH ARM would refuse, called before anything is
    stored. `write_effects`: type -> methods `(ctx, existing, new) -> status or None` that add
    what the provider adds to the resource (and may answer another status)."""

    schema_stats: schema.Stats
    tenant_id: str
    write_rules: dict[str, tuple[str, ...]] = {
        "*": ("_name_rule",),
        "microsoft.compute/virtualmachines": ("_vm_rules",),
        "microsoft.compute/disks": ("_disk_rules",),
        "microsoft.network/networkwatchers": ("_network_watcher_limit",),
        "microsoft.network/networksecuritygroups/securityrules": ("_security_rule_complete",),
        "microsoft.network/networkinterfaces": ("_asg_one_vnet",),
        "microsoft.authorization/roledefinitions": ("_role_name_unique",),
        "microsoft.storage/storageaccounts": ("_sas_policy_needs_rotated_keys",),
        "microsoft.insights/diagnosticsettings": ("_diagnostic_settings_limit",),
    }
    write_effects: dict[str, tuple[str, ...]] = {
        "microsoft.security/pricings": ("_pricing_effects",),
        "microsoft.security/defenderforstoragesettings": ("_storage_defender_effects",),
    }

    def _apply_write_rules(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        t = new["type"].lower()
        for name in self.write_rules.get(t, ()) + self.write_rules.get("*", ()):
            getattr(self, name)(ctx, existing, new)

    def _apply_write_effects(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> int | None:
        status = None
        for name in self.write_effects.get(new["type"].lower(), ()):
            status = getattr(self, name)(ctx, existing, new) or status
        return status

    def _check_conditions(self, ctx: Request, entry: dict[str, Any] | None, rtype: str = "") -> None:
        if rtype and not profile(rtype).etag:
            return  # a provider without etags ignores If-Match / If-None-Match
        if_match = ctx.headers.get("if-match")
        if_none = ctx.headers.get("if-none-match")
        failed = False
        if if_match is not None:
            if entry is None:
                failed = True
            elif if_match.strip() != "*":
                failed = bare_etag(if_match) != bare_etag(entry.get("etag") or "")
        if if_none is not None and entry is not None:
            failed = failed or if_none.strip() == "*" or bare_etag(if_none) == bare_etag(entry.get("etag") or "")
        if failed:
            raise arm_error(412, "PreconditionFailed",
                            "The condition specified using HTTP conditional header(s) is not met.")

    def _default_services(self, ctx: Request) -> None:
        """Every storage account has blobServices/default and fileServices/default in ARM, even
        if nobody wrote them: make them on first touch, with ARM's defaults. A service the
        account's kind lacks (files on BlobStorage/BlockBlobStorage, blobs on FileStorage) is
        ARM's 400 FeatureNotSupportedForAccount, for every method and for what lies under it."""
        segs, low = ctx.segs, ctx.low
        try:
            at = low.index("microsoft.storage")
        except ValueError:
            return
        if low[at + 1:at + 2] != ["storageaccounts"] or len(low) < at + 4:
            return
        service = low[at + 3]
        if service not in ("blobservices", "fileservices") or (len(low) > at + 4 and low[at + 4] != "default"):
            return
        account = self.store.get("/" + "/".join(segs[:at + 3]))
        if account is None:
            return
        kind = (account.get("kind") or "StorageV2").lower()
        if (service == "blobservices" and kind == "filestorage") or \
                (service == "fileservices" and kind in ("blobstorage", "blockblobstorage")):
            raise arm_error(400, "FeatureNotSupportedForAccount",
                            f"{'Blob' if service == 'blobservices' else 'File'} is not supported for the account.")
        sid = f"{account['id']}/{'blobServices' if service == 'blobservices' else 'fileServices'}/default"
        if self.store.get(sid) is not None:
            return
        props: dict[str, Any] = {"cors": {"corsRules": []}}
        if service == "blobservices":
            props["deleteRetentionPolicy"] = {"allowPermanentDelete": False, "enabled": False}
        else:
            props["shareDeleteRetentionPolicy"] = {"enabled": True, "days": 7}
        entry = normalize_entry({"id": sid, "sku": clone(account.get("sku")), "properties": props})
        if entry["sku"] is None:
            entry.pop("sku")
        self.store.put(entry)
        ctx.dirty = True

    # ---- resource groups ---------------------------------------------------------------
    def _resource_group(self, ctx: Request) -> Reply:
        segs = ctx.segs
        rg_id = f"/subscriptions/{segs[1]}/resourceGroups/{segs[3]}"
        entry = self.store.get(rg_id)
        if ctx.method in ("GET", "HEAD"):
            if entry is None:
                raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            return Reply(200 if ctx.method == "GET" else 204, clone(entry) if ctx.method == "GET" else None)
        authorize_write(ctx, self.read_only, RG_TYPE, rg_id)
        if ctx.method == "DELETE":
            if entry is None:
                raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            self._check_conditions(ctx, entry, RG_TYPE)
            before = self._snapshot([key(rg_id), *self.store.descendants(rg_id)])
            for k in list(before):
                self.store.delete(k)
            ctx.dirty = True
            return self._start_op(ctx, key(rg_id), "location", before, delete=True)
        body = ctx.json()
        if not isinstance(body, dict):
            raise arm_error(400, "InvalidRequestContent", "The request content must be a JSON object.")
        if ctx.method == "PATCH":
            if entry is None:
                raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found.")
            new = merge_patch(clone(entry), body)
        else:
            if not body.get("location"):
                raise arm_error(400, "LocationRequired", "The location property is required for this definition.")
            if entry is None and not RESOURCE_GROUP_NAME.accepts(segs[3]):
                raise arm_error(400, "InvalidResourceGroupName",
                                f"Resource group name '{segs[3]}' is invalid. {RESOURCE_GROUP_NAME.text}")
            new = clone(body)
        new.update({"id": entry["id"] if entry else rg_id, "name": segs[3], "type": RG_TYPE})
        new.setdefault("properties", {})["provisioningState"] = "Succeeded"
        new.pop("etag", None)  # ARM's resource groups carry no etag (the ResourceGroup model has none)
        self.store.put(new)
        ctx.dirty = True
        return Reply(201 if entry is None else 200, clone(new))

    # ---- PUT and PATCH -----------------------------------------------------------------
    def _write(self, ctx: Request) -> Reply:
        existing = self.store.get(ctx.path)
        rid_ = existing["id"] if existing else ctx.path
        p = parse(rid_)
        authorize_write(ctx, self.read_only, p.type, rid_)
        self._check_conditions(ctx, existing, p.type)
        body = ctx.json()
        prof = profile(p.type)
        ignored: list[tuple[tuple[str | int, ...], bool]] = []
        refusal = schema.body_refusal(ctx.method, p.type, ctx.api_version, body, self.schema_stats,
                                      normalise=prof.normalises, ignored=ignored)
        if refusal:
            raise arm_error(*refusal)
        if ctx.method == "PATCH" and existing is None:
            raise not_found(ctx.path)
        self._check_references(ctx, p.type, body)
        self._check_busy(rid_)
        t = p.type.lower()
        # children given inline replace the child set; read-only inline lists are dropped
        child_sets: list[tuple[str, list[Any]]] = []
        for path, seg in INLINE_CHILDREN.get(t, []):
            holder, prop = inline_holder(body, path)
            if holder is None:
                continue
            kids = holder.pop(prop)
            if (t, path) not in READ_ONLY_INLINE and isinstance(kids, list):
                child_sets.append((seg, kids))
                if t == "microsoft.network/networksecuritygroups" and seg == "securityRules":
                    for kid in kids:  # inline rules are held to what a rule's own PUT is
                        refusal = security_rule_refusal(kid)
                        if refusal:
                            raise arm_error(*refusal)
        if ctx.method == "PATCH":
            assert existing is not None
            new = merge_patch(clone(existing), body, null_removes=prof.patch_null == "removes")
        else:
            new = clone(body)
            # a read-only property the client sent back keeps the provider's value
            for trail, read_only in ignored:
                if read_only and existing is not None:
                    restore(new, existing, trail)
            # ARM computes these (and some providers keep more); a PUT that leaves them out keeps them.
            for prop in SERVER_COMPUTED + prof.put_keeps:
                kept = (existing or {}).get("properties", {}).get(prop) if isinstance(existing, dict) else None
                if kept is not None and isinstance(new.get("properties", {}), dict):
                    new.setdefault("properties", {}).setdefault(prop, kept)
        new["id"] = rid_
        new = normalize_entry(new)
        if prof.normalises and isinstance(new.get("location"), str):
            new["location"] = new["location"].replace(" ", "").lower()  # "West Europe" -> "westeurope"
        keyvault.stamp(new, existing, self.tenant_id, self.store)
        cmk_refusal = keyvault.refusal(self.store, new, existing)
        if cmk_refusal:  # a customer-managed key the resource cannot reach (sandbox/keyvault.py)
            raise arm_error(*cmk_refusal)
        self._apply_write_rules(ctx, existing, new)
        status = self._apply_write_effects(ctx, existing, new)
        new["etag"] = new_etag()
        created = existing is None
        if created and t.startswith("microsoft.network/") and t.count("/") == 1:
            new.setdefault("properties", {}).setdefault("resourceGuid", str(uuid.uuid4()))
        if created and t == "microsoft.compute/virtualmachines":  # Compute names every VM it creates
            new.setdefault("properties", {}).setdefault("vmId", str(uuid.uuid4()))
        lro = prof.lro(ctx.method, created)
        if prof.provisioning_state:
            state = ("Creating" if created else "Updating") if lro else "Succeeded"
            new.setdefault("properties", {})["provisioningState"] = state
        touched = [key(rid_)]
        child_entries: list[dict[str, Any]] = []
        removed: list[str] = []
        for seg, kids in child_sets:
            listed = set()
            for kid in kids:
                if not isinstance(kid, dict) or not (kid.get("name") or kid.get("id")):
                    raise arm_error(400, "InvalidRequestContent", f"Every item of '{seg}' needs a name.")
                name = kid.get("name") or parse(kid["id"]).name
                child = clone(kid)
                child["id"] = f"{rid_}/{seg}/{name}"
                child = normalize_entry(child)
                child["etag"] = new_etag()
                if prof.provisioning_state:
                    child.setdefault("properties", {})["provisioningState"] = "Succeeded"
                child_entries.append(child)
                listed.add(key(child["id"]))
            for old in self.store.children(rid_, f"{p.type}/{seg}"):
                if key(old["id"]) not in listed:
                    removed.append(key(old["id"]))
                    removed.extend(self.store.descendants(old["id"]))
        parent_key = None
        if p.parent and is_inline_child(p.type):
            parent_key = key(p.parent)
        old_links, new_links = back_links(existing), back_links(new)
        linked = sorted({k for links in (old_links, new_links) for k in links})
        before = self._snapshot(touched + [key(c["id"]) for c in child_entries] + removed
                                + ([parent_key] if parent_key else []) + linked)
        self.store.put(new)
        for c in child_entries:
            self.store.put(c)
        for k in removed:
            self.store.delete(k)
        if parent_key and parent_key in self.store.entries:
            parent = clone(self.store.entries[parent_key])
            parent["etag"] = new_etag()
            self.store.put(parent)
        self._relink(rid_, old_links, new_links, BACK_LINK_PROP.get(t, ""))
        ctx.dirty = True
        if lro is None:
            return Reply(status or (prof.sync_create_status if created else prof.sync_update_status),
                         self.compose(new))
        return self._start_op(ctx, key(rid_), lro, before, created=created)

    def _relink(self, owner_id: str, old: dict[str, str], new: dict[str, str], prop: str) -> None:
        """ARM keeps some references in both directions: a public IP's `ipConfiguration` names the
        NIC configuration that uses it, a NIC's `virtualMachine` the VM that holds it. Writing or
        deleting the owner updates the other side (and its etag)."""
        owner = owner_id.lower()
        for k in sorted(set(old) | set(new)):
            if old.get(k) == new.get(k):
                continue  # the owner did not change this link: the other side stays as it is
            target = self.store.entries.get(k)
            if target is None:
                continue
            current = ((target.get("properties") or {}).get(prop) or {}).get("id")
            if k in new:
                if current == new[k]:
                    continue
                updated = clone(target)
                updated.setdefault("properties", {})[prop] = {"id": new[k]}
            elif current and (current.lower() == owner or current.lower().startswith(owner + "/")):
                updated = clone(target)
                updated["properties"].pop(prop, None)
            else:
                continue
            updated["etag"] = new_etag()
            self.store.put(updated)

    def _delete(self, ctx: Request) -> Reply:
        existing = self.store.get(ctx.path)
        p = parse(ctx.path)
        authorize_write(ctx, self.read_only, p.type, ctx.path)
        self._check_conditions(ctx, existing, p.type)
        if existing is None:
            return Reply(204)
        self._check_busy(existing["id"])
        t = p.type.lower()
        if t in ("microsoft.network/networksecuritygroups", "microsoft.network/routetables"):
            users = self.store.referrers(existing["id"])
            if users:
                what = "NetworkSecurityGroup" if "security" in t else "RouteTable"
                raise arm_error(400, f"InUse{what}CannotBeDeleted",
                                f"{what} {existing['id']} cannot be deleted because it is in use by "
                                f"{self.store.entries[users[0]]['id']}.")
        deleted = self.compose(existing) if profile(t).delete_returns_body else None
        keys = [key(existing["id"]), *self.store.descendants(existing["id"])]
        parent_key = key(p.parent) if p.parent and is_inline_child(p.type) else None
        old_links = back_links(existing)
        before = self._snapshot(keys + ([parent_key] if parent_key else []) + sorted(old_links))
        for k in keys:
            self.store.delete(k)
        self._relink(existing["id"], old_links, {}, BACK_LINK_PROP.get(t, ""))
        self.power.pop(key(existing["id"]), None)
        if parent_key and parent_key in self.store.entries:
            parent = clone(self.store.entries[parent_key])
            parent["etag"] = new_etag()
            self.store.put(parent)
        ctx.dirty = True
        lro = profile(t).delete_lro
        if lro:
            return self._start_op(ctx, key(existing["id"]), lro, before, delete=True)
        return Reply(200, deleted)
