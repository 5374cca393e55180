"""ARM JSON: property paths, comparison, merge, diff, inverse and inline children, in one place.

Paths. A path is a tuple of keys (`("properties", "criteria", "odata.type")`), so a key may hold
dots. Anywhere a path is taken, a string is accepted too: keys separated by dots, and a key that
holds a dot (or a bracket) written as a bracketed JSON string: `properties.criteria["odata.type"]`,
`tags["cost.center"]`. `format_path` writes that form back. Keys match case-insensitively, as ARM
matches property names, for reads and writes alike: writing `properties.minimumtlsversion`
updates an existing `minimumTlsVersion` rather than adding a second key.

Trees. `before`/`after` of a change are partial resources: only the properties it sets. Lists and
empty objects are leaves; a leaf of None means "absent" (ARM treats null and absent alike when
reading)."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]
PathLike = str | tuple[str, ...]

# Fields ARM computes; sending them back is noise at best and rejected at worst, and comparing
# them says nothing about what a change set.
READ_ONLY_KEYS = frozenset({"etag", "provisioningState", "systemData", "resourceGuid", "subscriptionId",
                            "resourceGroup", "tenantId", "managementGroup",
                            "hasBgpOverride"})  # a route's, computed by Network (readOnly in the spec)

def literal(value: Any) -> str:
    """A value as ARM's JSON spells it (`null`, `true`, `"AAD"`), for messages and diffs a person
    reads next to the portal and az: never Python's `None`, `True`, `'AAD'`."""
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


# ---- paths -----------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\[("(?:[^"\\]|\\.)*")\]|([^.\[\]]+)')


def parse_path(path: PathLike) -> Path:
    """`properties.criteria["odata.type"]` -> ("properties", "criteria", "odata.type"); a tuple is
    returned as it is."""
    if isinstance(path, tuple):
        return path
    return _parse_text(path)


@functools.lru_cache(maxsize=4096)  # the catalog reads the same few paths on every resource
def _parse_text(path: str) -> Path:
    keys: list[str] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise ValueError(f"malformed property path {path!r} at {pos}")
        keys.append(json.loads(m.group(1)) if m.group(1) else m.group(2))
        pos = m.end()
        if pos < len(path):
            if path[pos] == ".":
                pos += 1
                if pos == len(path):
                    raise ValueError(f"malformed property path {path!r}: trailing dot")
            elif path[pos] != "[":
                raise ValueError(f"malformed property path {path!r} at {pos}")
    if not keys:
        raise ValueError("empty property path")
    return tuple(keys)


def format_path(path: PathLike) -> str:
    """The string form of a path (the inverse of `parse_path`)."""
    out = ""
    for key in parse_path(path):
        if re.fullmatch(r"[^.\[\]\"]+", key):
            out += ("." if out else "") + key
        else:
            out += "[" + json.dumps(key) + "]"
    return out


dotted = format_path


def _match(obj: dict[str, Any], key: str) -> str | None:
    """The key of `obj` that ARM would take for `key`: exact first, then case-folded."""
    if key in obj:
        return key
    low = key.lower()
    try:  # the checks miss keys a million times at 50,000 resources: rule a miss out in C first
        if low not in map(str.lower, obj):
            return None
    except TypeError:  # a key that is not a string (not JSON, but a caller's dict may have one)
        pass
    for k in obj:
        if str(k).lower() == low:
            return k
    return None


def get_path(obj: Any, path: PathLike, default: Any = None) -> Any:
    """The value at `path`, or `default` when any key on the way is absent."""
    cur = obj
    for key in path if isinstance(path, tuple) else _parse_text(path):
        if not isinstance(cur, dict):
            return default
        if key in cur:  # the exact key, as ARM spells it almost always: no call for it
            cur = cur[key]
            continue
        found = _match(cur, key)
        if found is None:
            return default
        cur = cur[found]
    return cur


def set_path(obj: dict[str, Any], path: PathLike, value: Any) -> None:
    """Set `path` to `value` (None is written as an explicit JSON null), reusing existing keys
    whatever their case and creating objects on the way."""
    keys = parse_path(path)
    cur = obj
    for key in keys[:-1]:
        found = _match(cur, key) or key
        nxt = cur.get(found)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[found] = nxt
        cur = nxt
    cur[_match(cur, keys[-1]) or keys[-1]] = value


def remove_path(obj: dict[str, Any], path: PathLike) -> None:
    """Remove the property at `path` if it is there."""
    keys = parse_path(path)
    parent = get_path(obj, keys[:-1]) if len(keys) > 1 else obj
    if isinstance(parent, dict):
        found = _match(parent, keys[-1])
        if found is not None:
            del parent[found]


def clone(value: Any) -> Any:
    """A deep copy of a JSON value; anything else goes through copy.deepcopy. For plain JSON,
    deepcopy's memo and dispatch cost several times the copy (a scale plan makes 100,000s)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if type(value) is dict:
        return {k: clone(v) for k, v in value.items()}
    if type(value) is list:
        return [clone(v) for v in value]
    return copy.deepcopy(value)


def nested(values: Mapping[Any, Any]) -> dict[str, Any]:
    """{"properties.a.b": 1} -> {"properties": {"a": {"b": 1}}} (keys are paths)."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        set_path(out, path, clone(value))
    return out


def leaves(tree: Any, prefix: Path = ()) -> dict[Path, Any]:
    """{"properties": {"a": {"b": 1}}} -> {("properties", "a", "b"): 1}. Lists and empty objects
    are leaves."""
    if isinstance(tree, dict) and tree:
        out: dict[Path, Any] = {}
        for k, v in tree.items():
            out.update(leaves(v, (*prefix, str(k))))
        return out
    return {prefix: tree} if prefix else {}


# Read-only fields whose names are writable on other types, so they are removed only where ARM
# computes them (a firewall policy's size is its own, a NetApp pool's size is the caller's).
READ_ONLY_PATHS: dict[str, tuple[Path, ...]] = {
    "microsoft.network/firewallpolicies": (("properties", "size"),),
    "microsoft.network/firewallpolicies/rulecollectiongroups": (("properties", "size"),),
}


def writable(res: dict[str, Any]) -> dict[str, Any]:
    """A copy of `res` fit to PUT back: read-only fields removed at every depth, the type's own
    read-only paths, and an empty `kind` (Resource Graph's "none", which a PUT must not carry)."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in READ_ONLY_KEYS}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    out: dict[str, Any] = strip(res)  # new dicts and lists at every depth: a copy already
    if out.get("kind") == "":
        del out["kind"]
    for path in READ_ONLY_PATHS.get(str(res.get("type") or "").lower(), ()):
        remove_path(out, path)
    return out


# ---- comparing -------------------------------------------------------------------------------

def same(expected: Any, actual: Any) -> bool:
    """Does ARM's `actual` hold `expected`? Strings compare case-insensitively (ARM's names, ids and
    enums are), objects as subsets ignoring read-only fields (ARM adds etags and states), lists
    element by element (named child resources in any order); absent and null are the same."""
    if expected is None or expected == {}:
        return actual is None or actual == {} or (expected == {} and isinstance(actual, dict))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        low = {str(k).lower(): v for k, v in actual.items()}
        return all(same(v, low.get(str(k).lower())) for k, v in expected.items() if k not in READ_ONLY_KEYS)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return False
        if _named(expected) and _named(actual):  # child resources: ARM may return them in any order
            by_name = {str(a["name"]).lower(): a for a in actual}
            return all(same(e, by_name.get(str(e["name"]).lower())) for e in expected)
        return all(same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def _named(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    return len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def mismatches(resource: dict[str, Any] | None, tree: dict[str, Any]) -> list[Path]:
    """The leaf paths of `tree` that `resource` does not hold. Where the resource's type is known,
    a property at its platform default counts as absent (ARM means the default when it is), and
    in a list the provider extends with entries of its own only the entries `tree` names count."""
    res = resource or {}
    rtype = str(res.get("type") or "").lower()
    defaults = {_low(p): v for p, v in PLATFORM_DEFAULTS.get(rtype, {}).items()}
    additive = {_low(p) for p in ADDITIVE_LISTS.get(rtype, ())}
    out: list[Path] = []
    for path, expected in leaves(tree).items():
        actual, key = get_path(res, path), _low(path)
        if key in additive and isinstance(expected, list) and isinstance(actual, list) and _named(expected):
            by_name = {str(a.get("name")).lower(): a for a in actual if isinstance(a, dict)}
            ok = all(same(e, by_name.get(str(e["name"]).lower())) for e in expected)
        elif key in defaults:
            ok = same(defaults[key] if expected is None else expected, defaults[key] if actual is None else actual)
        else:
            ok = same(expected, actual)
        if not ok:
            out.append(path)
    return out


def _low(path: Path) -> Path:
    return tuple(k.lower() for k in path)


# Lists a provider extends with entries the request did not send (notes/arm-platform.md §5: a
# Defender plan comes back with extensions of its own): only the entries a change names count.
ADDITIVE_LISTS: dict[str, tuple[Path, ...]] = {
    "microsoft.security/pricings": (("properties", "extensions"),),
}


def holds(resource: dict[str, Any] | None, tree: dict[str, Any]) -> bool:
    return not mismatches(resource, tree)


def side(resource: dict[str, Any] | None, before: dict[str, Any], after: dict[str, Any]) -> str:
    """Which side of an update `resource` is on: "after", "before" or "neither". When it holds both
    (a dict gained a key inside a list, so `before` is a subset of `after`), the more specific
    tree wins."""
    ha, hb = holds(resource, after), holds(resource, before)
    if ha and hb:
        after_covers_before, before_covers_after = holds(after, before), holds(before, after)
        if before_covers_after and not after_covers_before:
            return "before"
        return "after"
    return "after" if ha else "before" if hb else "neither"


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[Path, tuple[Any, Any]]:
    """{path: (old value, new value)} for every leaf that differs between the two trees (absent is
    None; equality as ARM sees it, see `same`). `nested` of the new values, applied to `old` with
    `apply_values`, gives a resource that holds `new`."""
    a, b = old or {}, new or {}
    out: dict[Path, tuple[Any, Any]] = {}
    for path in [*leaves(a), *(p for p in leaves(b) if p not in leaves(a))]:
        if path in out:
            continue
        x, y = get_path(a, path), get_path(b, path)
        if not (same(x, y) and same(y, x)):
            out[path] = (copy.deepcopy(x), copy.deepcopy(y))
    return out


# ---- writing ---------------------------------------------------------------------------------

def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`base` after an ARM PATCH with body `patch` (JSON merge patch, RFC 7396): objects merge key
    by key (keys matched case-insensitively), null removes the property, lists and scalars
    replace. Some providers ignore null (see notes/arm-platform.md §2): `inverse` never relies on
    it where a platform default is known."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        key = _match(out, k) or k
        if v is None:
            out.pop(key, None)
        elif isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], v)
        elif isinstance(v, dict):
            out[key] = merge({}, v)
        else:
            out[key] = copy.deepcopy(v)
    return out


def apply_values(base: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """`base` with every leaf of `tree` set (a None leaf removes the property): what a full-body PUT
    of `tree` onto `base` sends."""
    out = copy.deepcopy(base)
    for path, value in leaves(tree).items():
        if value is None:
            remove_path(out, path)
        else:
            set_path(out, path, copy.deepcopy(value))
    return out


# Platform defaults spelled out, by lower-cased resource type and path: what ARM means when the
# property is absent, so that taking back a property the wizard added writes the explicit value
# instead of a null that providers ignore (notes/arm-platform.md §2: `encryptionAtHost` must be
# `false`, `identity` `{"type": "None"}`). A property not listed here is removed with a null by
# undo (`Inverse.no_inverse` names it) and the re-read after the undo tells whether it went.
PLATFORM_DEFAULTS: dict[str, dict[Path, Any]] = {
    "microsoft.compute/virtualmachines": {
        ("identity", "type"): "None",
        ("properties", "securityProfile", "encryptionAtHost"): False,
        ("properties", "securityProfile", "securityType"): "Standard",
        ("properties", "securityProfile", "uefiSettings", "secureBootEnabled"): False,
        ("properties", "securityProfile", "uefiSettings", "vTpmEnabled"): False,
    },
    # As the catalog judges an absent property (steps/storage.toml `default`s).
    "microsoft.storage/storageaccounts": {
        ("identity", "type"): "None",  # storage-1g gives an account a system identity for its key
        ("properties", "allowSharedKeyAccess"): True,
        ("properties", "allowBlobPublicAccess"): True,
        ("properties", "defaultToOAuthAuthentication"): False,
        ("properties", "supportsHttpsTrafficOnly"): False,
        ("properties", "minimumTlsVersion"): "TLS1_0",
        ("properties", "publicNetworkAccess"): "Enabled",
        ("properties", "allowedCopyScope"): "All",  # from api-version 2023-05-01 (the unrestricted scope)
        ("properties", "networkAcls", "defaultAction"): "Allow",
        ("properties", "networkAcls", "ipRules"): [],
        ("properties", "networkAcls", "virtualNetworkRules"): [],
    },
    "microsoft.compute/disks": {
        ("properties", "publicNetworkAccess"): "Enabled",
        ("properties", "allowedCopyScope"): "All",  # from api-version 2023-05-01 (the unrestricted scope)
        ("properties", "networkAccessPolicy"): "AllowAll",
    },
}

# Properties whose removal ARM does not carry out (a null or an omission leaves them as they
# are), so a change that adds them cannot be taken back: labelled one-way before apply.
ONE_WAY: dict[str, dict[Path, str]] = {
    # Storage ignores a null in a PATCH and keeps what a PUT leaves out (azure-rest-api-specs
    # issue 31949), and these have no "off" value to write back.
    "microsoft.storage/storageaccounts": {
        ("properties", "sasPolicy"): "Storage keeps a SAS expiration policy once set (a null does not remove it)",
        ("properties", "keyPolicy"): "Storage keeps a key expiration policy once set (a null does not remove it)",
    },
}

# Types whose full PUT replaces the resource, so a PUT without a property removes it where a
# null in a PATCH is ignored (compute; `az vm update` itself is a GET and a PUT).
PUT_REPLACES = frozenset({"microsoft.compute/virtualmachines"})


def one_way(resource_type: str, method: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """Why a change that sets `after` over `before` cannot be undone ('' when it can)."""
    if method.upper() == "DELETE":
        return ""
    table = {_low(p): why for p, why in ONE_WAY.get(resource_type.lower(), {}).items()}
    if not table:
        return ""  # most types: nothing they set is one-way, so no need to walk the change
    had = leaves(before)
    for path in leaves(after):
        if had.get(path) is not None:
            continue
        for n in range(len(path), 0, -1):
            why = table.get(_low(path[:n]))
            if why:
                return why
    return ""


def platform_defaults(resource_type: str) -> dict[Path, Any]:
    return dict(PLATFORM_DEFAULTS.get(resource_type.lower(), {}))


@dataclass
class Inverse:
    """What restores `before` over `after`. `tree` is the body; `no_inverse` lists the properties
    the change added that have no known platform default: `tree` removes them (null), which not
    every provider honours."""

    tree: dict[str, Any]
    no_inverse: list[Path] = field(default_factory=list)


def inverse(before: dict[str, Any], after: dict[str, Any], before_image: dict[str, Any] | None = None, *,
            defaults: Mapping[Any, Any] | None = None) -> Inverse:
    """The explicit previous value of every property `after` sets; for a property absent before,
    its platform default from `defaults` ({path: value}) where known, else a removal (None),
    flagged in `no_inverse`. With the full before-image, a removal takes out the outermost object
    that did not exist then (not just an emptied shell)."""
    known = {parse_path(p): v for p, v in (defaults or {}).items()}
    known_low = {tuple(k.lower() for k in p): v for p, v in known.items()}
    had = leaves(before)
    removals: list[Path] = []
    for path in leaves(after):
        if path in had and had[path] is not None:
            continue
        if path not in had and any(path[:i] in had for i in range(1, len(path))):
            continue
        removals.append(path)
    out = copy.deepcopy(before)

    def default(path: Path) -> Any:
        return known_low.get(tuple(k.lower() for k in path), _ABSENT)

    for path in removals:
        if default(path) is not _ABSENT:
            continue  # spelled out below
        top = path
        if before_image is not None:
            for i in range(1, len(path) + 1):
                if get_path(before_image, path[:i]) is None:
                    top = path[:i]
                    break
        _set_none(out, top)
    for path in removals:
        if default(path) is not _ABSENT:
            set_path(out, path, copy.deepcopy(default(path)))
    # Whatever is still a null is a removal: the previous state had no value to write back.
    no_inverse: list[Path] = []
    for path, value in leaves(out).items():
        if value is None:
            if default(path) is _ABSENT:
                no_inverse.append(path)
            else:
                set_path(out, path, copy.deepcopy(default(path)))
    return Inverse(out, no_inverse)


_ABSENT = object()


def _set_none(obj: dict[str, Any], path: Path) -> None:
    cur = obj
    for key in path[:-1]:
        nxt = cur.get(key)
        if nxt is None and key in cur:
            return  # an enclosing object is already being removed
        if not isinstance(nxt, dict):
            nxt = {}
            cur[key] = nxt
        cur = nxt
    cur[path[-1]] = None


# ---- inline children -------------------------------------------------------------------------

# Parent type (lower) -> (inline property holding children, child type segment): ARM returns these
# children inside their parent as well as at their own ids.
INLINE_CHILDREN: dict[str, list[tuple[str, str]]] = {
    "microsoft.network/virtualnetworks": [("properties.subnets", "subnets"),
                                          ("properties.virtualNetworkPeerings", "virtualNetworkPeerings")],
    "microsoft.network/networksecuritygroups": [("properties.securityRules", "securityRules")],
    "microsoft.network/routetables": [("properties.routes", "routes")],
    "microsoft.compute/virtualmachines": [("resources", "extensions")],
}


def inline_holder(res: dict[str, Any], path: PathLike, create: bool = False) -> tuple[dict[str, Any] | None, str]:
    """The object holding the last key of `path`, and that key as it is spelt there; None when it
    is absent (unless `create`)."""
    keys = parse_path(path)
    cur: Any = res
    for k in keys[:-1]:
        if not isinstance(cur, dict):
            return None, keys[-1]
        found = _match(cur, k)
        if found is None:
            if not create:
                return None, keys[-1]
            found = k
            cur[found] = {}
        cur = cur[found]
    if not isinstance(cur, dict):
        return None, keys[-1]
    found = _match(cur, keys[-1])
    if found is None and not create:
        return None, keys[-1]
    return cur, found or keys[-1]


def inline_lists(res: dict[str, Any], table: Mapping[str, list[tuple[str, str]]] = INLINE_CHILDREN, *,
                 remove: bool = False) -> Iterator[tuple[str, str, Any]]:
    """(path, child segment, value) for each inline child list `res` carries (`remove` takes it out
    of `res`). The value is as found: the caller decides what a non-list means."""
    for path, seg in table.get(str(res.get("type", "")).lower(), []):
        holder, key = inline_holder(res, path)
        if holder is None:
            continue
        value = holder.pop(key) if remove else holder[key]
        if value is not None:
            yield path, seg, value


def child_id(parent_id: str, seg: str, child: dict[str, Any]) -> str | None:
    """A child's full id: its own, or built from its parent and name; None with neither."""
    if child.get("id"):
        return str(child["id"])
    name = child.get("name")
    return f"{parent_id}/{seg}/{name}" if isinstance(name, str) and name else None


def lift_children(res: dict[str, Any], table: Mapping[str, list[tuple[str, str]]] = INLINE_CHILDREN, *,
                  remove: bool = False, deep: bool = True) -> list[dict[str, Any]]:
    """The inline children of `res`, each a copy with its full id, leniently: entries that are
    not objects, or have neither id nor name, are left out. `deep=False` shares their values: for
    a caller that puts the lifted entries in place of the inline ones (nothing else keeps those)."""
    out: list[dict[str, Any]] = []
    for _path, seg, kids in inline_lists(res, table, remove=remove):
        for kid in kids if isinstance(kids, list) else []:
            if not isinstance(kid, dict):
                continue
            cid = child_id(str(res["id"]), seg, kid)
            if cid is None:
                continue
            out.append({**(copy.deepcopy(kid) if deep else kid), "id": cid})
    return out
