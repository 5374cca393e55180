"""Estate files: an exported estate read into the one shape the sandbox stores.

Exports come in three dialects (a bare JSON array, ARM's `{"value": [...]}` list, Resource
Graph's `{"data": [...]}`), with children sometimes inline and sometimes on their own. Whatever
the dialect, the result is a list of ARM wire-JSON resources with every child as its own entry
and no inline copy, so that the sandbox has one source of truth for each resource. Anything
that cannot be trusted is refused with one sentence naming the entry: a half-loaded estate
would make every later verdict wrong."""

from __future__ import annotations

import copy
import gc
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import resource_id as rid
from .armjson import INLINE_CHILDREN as _ARM_INLINE
from .armjson import child_id, inline_lists
from .errors import UsageError
from .files import file_kind

# Inline children to lift out of a parent: the inventory's, plus rule collection groups, which an
# export may carry inline in their policy (ARM itself only lists their ids there).
INLINE_CHILDREN: dict[str, list[tuple[str, str]]] = {
    **_ARM_INLINE,
    "microsoft.network/firewallpolicies": [("properties.ruleCollectionGroups", "ruleCollectionGroups")],
}

# Resource Graph columns that are not part of an ARM resource.
ARG_ONLY_COLUMNS = ("subscriptionId", "resourceGroup", "tenantId")
# Resource Graph fills absent standard columns with null or "": ARM would leave them out.
ARG_OPTIONAL_COLUMNS = ("kind", "managedBy", "sku", "plan", "identity", "zones", "extendedLocation", "tags",
                        "location")
# Resource Graph names a few types differently from ARM.
TYPE_ALIASES = {
    "microsoft.resources/subscriptions/resourcegroups": "microsoft.resources/resourcegroups",
}

_HINT = ("An estate file is a JSON array of ARM resources, or an object with that array under "
         "\"value\" (ARM list) or \"data\" (Resource Graph); see `ztwizard sandbox export` for an example.")


# Estate files larger than this are refused before reading (`--max-estate-mb` sets it).
MAX_ESTATE_BYTES = 1024 * 1024 * 1024


def load_estate_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> list[dict[str, Any]]:
    """Read and validate an estate file; UsageError (exit 2) for anything unusable. Only a
    regular file of at most `max_bytes` (default MAX_ESTATE_BYTES) is read: a FIFO or
    /dev/zero would hang or fill memory."""
    p = Path(path)
    name = str(path)
    limit = MAX_ESTATE_BYTES if max_bytes is None else max_bytes
    if not name.strip():
        raise UsageError("The estate file is an empty path.",
                         "Pass `reference`, `scale:N` or the path of an estate file.")
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"Estate file {name} is a directory, not a file.",
                             "Pass the path of a JSON estate file.")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"Estate file {name} is {file_kind(st.st_mode)}, not a regular file; it was not read.",
                             "Save the export to a file first, then pass that file.")
        if st.st_size > limit:
            raise UsageError(f"Estate file {name} is {st.st_size / 2**20:.0f} MB, over the "
                             f"{limit / 2**20:.0f} MB limit; it was not read.",
                             "Raise the limit with --max-estate-mb N if the file is really an export.")
        with open(p, "rb") as fh:
            raw = fh.read(limit + 1)  # the file may have grown since the stat
        if len(raw) > limit:
            raise UsageError(f"Estate file {name} is over the {limit / 2**20:.0f} MB limit; it was not read.",
                             "Raise the limit with --max-estate-mb N if the file is really an export.")
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"Estate file {name} does not exist.",
                         "Pass `reference`, `scale:N` or the path of an estate file.") from None
    except IsADirectoryError:
        raise UsageError(f"Estate file {name} is a directory, not a file.",
                         "Pass the path of a JSON estate file.") from None
    except PermissionError:
        raise UsageError(f"Estate file {name} cannot be read (permission denied).",
                         "Check the file's permissions.") from None
    except UnicodeDecodeError:
        raise UsageError(f"Estate file {name} is not UTF-8 text.", _HINT) from None
    except OSError as exc:
        raise UsageError(f"Estate file {name} cannot be read ({exc.strerror or exc}).",
                         "Check the path.") from None
    # Decoded JSON holds no cycles: the cyclic collector would only walk the millions of new
    # objects again and again as they pile up (a third of loading 50,000 resources).
    paused = gc.isenabled()
    gc.disable()
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"Estate file {name} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                             f"column {exc.colno}).", _HINT) from None
        except RecursionError:
            raise UsageError(f"Estate file {name} is nested too deeply to be an ARM export.", _HINT) from None
        return parse_estate(data, name, owned=True)
    finally:
        if paused:
            gc.enable()


def parse_estate(data: Any, source_name: str = "the estate", *, owned: bool = False) -> list[dict[str, Any]]:
    """Validate decoded JSON and normalise it: types cased as ARM does, children as own entries.
    The caller's data is copied first unless `owned` (decoded here and used by nobody else: at
    50,000 resources the copy was a fifth of the load)."""
    entries, graph = _entries(data, source_name)
    seen: dict[str, int] = {}
    parents: list[dict[str, Any]] = []
    for index, raw in enumerate(entries):
        res = _validate(raw, index, source_name, graph, owned)
        key = res["id"].rstrip("/").lower()
        if key in seen:
            raise UsageError(
                f"Entry {index} ({res['id']}) in {source_name} repeats the id of entry {seen[key]}.",
                "Each resource must appear once; remove the duplicate.")
        seen[key] = index
        parents.append(res)

    out: list[dict[str, Any]] = []
    own = set(seen)
    emitted: set[str] = set()
    for index, res in enumerate(parents):
        out.append(res)
        for child in _lift_children(res, index, source_name):
            ckey = child["id"].rstrip("/").lower()
            if ckey in own or ckey in emitted:
                continue  # the entry of its own (or an earlier inline copy) wins
            emitted.add(ckey)
            out.append(child)
    return _with_resource_groups(out)


# ---- top level -------------------------------------------------------------------------------
def _entries(data: Any, source: str) -> tuple[list[Any], bool]:
    if isinstance(data, list):
        return data, False
    if isinstance(data, dict):
        if "value" in data:
            if not isinstance(data["value"], list):
                raise UsageError(f"In {source}, \"value\" is not a list of resources.", _HINT)
            return data["value"], False
        if "data" in data:
            rows = data["data"]
            if isinstance(rows, dict) and isinstance(rows.get("columns"), list) \
                    and isinstance(rows.get("rows"), list):
                return _table_rows(rows, source), True
            if not isinstance(rows, list):
                raise UsageError(f"In {source}, \"data\" is not a list of resources.",
                                 "Export Resource Graph results with resultFormat objectArray. " + _HINT)
            return rows, True
        if "id" in data and "type" in data:
            raise UsageError(f"{source} holds a single resource, not a list of them.",
                             "Wrap it in a JSON array: [ {...} ].")
        raise UsageError(f"{source} is a JSON object without a \"value\" or \"data\" list.", _HINT)
    raise UsageError(f"{source} holds a JSON {_json_kind(data)}, not a list of resources.", _HINT)


def _table_rows(table: dict[str, Any], source: str) -> list[Any]:
    """Resource Graph's `table` result format, turned into objectArray rows."""
    names = []
    for col in table["columns"]:
        if not isinstance(col, dict) or not isinstance(col.get("name"), str):
            raise UsageError(f"In {source}, a Resource Graph column has no name.", _HINT)
        names.append(col["name"])
    rows = []
    for i, row in enumerate(table["rows"]):
        if not isinstance(row, list) or len(row) != len(names):
            raise UsageError(f"Row {i} in {source} does not match the {len(names)} Resource Graph columns.",
                             _HINT)
        rows.append(dict(zip(names, row, strict=True)))
    return rows


# ---- one entry -------------------------------------------------------------------------------
def _validate(raw: Any, index: int, source: str, graph: bool, owned: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"Entry {index} in {source} is a JSON {_json_kind(raw)}, not a resource object.",
                         "Every entry must be an object with at least an \"id\".")
    res = raw if owned else copy.deepcopy(raw)
    label = _label(res, index)
    _check_id(res.get("id"), f"Entry {index}{label} in {source}")
    resource_id = "/" + res["id"].strip().strip("/")
    parsed = rid.parse(resource_id)
    _check_type(res, parsed, f"Entry {index} ({resource_id}) in {source}")
    if graph:
        sub_col = res.get("subscriptionId")
        if isinstance(sub_col, str) and sub_col and parsed.subscription \
                and sub_col.lower() != parsed.subscription.lower():
            raise UsageError(f"Entry {index} ({resource_id}) in {source} has subscriptionId {sub_col}, "
                             f"but its id names subscription {parsed.subscription}.",
                             "The Resource Graph row is inconsistent; export it again.")
        for col in ARG_ONLY_COLUMNS:
            res.pop(col, None)
        for col in ARG_OPTIONAL_COLUMNS:
            if res.get(col) in (None, ""):
                res.pop(col, None)
    for key, kind in (("properties", dict), ("tags", dict), ("location", str), ("name", str)):
        if res.get(key) is not None and not isinstance(res[key], kind):
            raise UsageError(f"Entry {index} ({resource_id}) in {source} has a \"{key}\" that is not "
                             f"a JSON {'object' if kind is dict else 'string'}.",
                             "Fix or remove that entry.")
    res["id"] = resource_id
    res["type"] = parsed.type
    res.setdefault("name", parsed.name)
    return res


_CONTROL = re.compile(r"[\x00-\x1f]")


def _check_id(value: Any, where: str) -> None:
    if value is None:
        raise UsageError(f"{where} has no \"id\".",
                         "Every resource needs its full ARM id, e.g. /subscriptions/<guid>/resourceGroups/<rg>/…")
    if not isinstance(value, str):
        raise UsageError(f"{where} has an \"id\" that is not a string.", "Fix or remove that entry.")
    rid_text = "/" + value.strip().strip("/")
    low = rid_text.lower()
    if "//" in value.strip().strip("/") or _CONTROL.search(value):
        raise UsageError(f"{where} has a malformed id {value!r} (an empty segment or a control character).",
                         "Use the id exactly as ARM returns it.")
    if low.startswith("/subscriptions/"):
        sub = rid_text.split("/")[2] if len(rid_text.split("/")) > 2 else ""
        if not rid.is_guid(sub):
            raise UsageError(f"{where} has id {value!r} whose subscription {sub!r} is not a GUID.",
                             "Subscription ids look like 00000000-0000-0000-0000-000000000000.")
    elif low.startswith("/providers/"):
        raise UsageError(f"{where} has id {value!r}, at management-group or tenant scope; "
                         "an estate holds subscriptions and what is in them.",
                         "Remove management-group and tenant-scope entries from the export.")
    else:
        raise UsageError(f"{where} has id {value!r}, which does not start with /subscriptions/.",
                         "Use the full ARM id, e.g. /subscriptions/<guid>/resourceGroups/<rg>/….")
    parsed = rid.parse(rid_text)
    if not parsed.type or not parsed.name:
        raise UsageError(f"{where} has id {value!r}, which does not end in a resource type and name.",
                         "Ids look like /subscriptions/<guid>/resourceGroups/<rg>/providers/<Namespace>/<type>/<name>.")
    if low.startswith("/subscriptions/") and parsed.type.lower() != "microsoft.resources/subscriptions":
        parts = rid_text.strip("/").split("/")
        if len(parts) > 2 and parts[2].lower() not in ("resourcegroups", "providers"):
            raise UsageError(f"{where} has id {value!r}, with {parts[2]!r} where resourceGroups or "
                             "providers belongs.", "Use the full ARM id.")


def _check_type(res: dict[str, Any], parsed: rid.ResourceId, where: str) -> None:
    given = res.get("type")
    if given is None:
        return
    if not isinstance(given, str):
        raise UsageError(f"{where} has a \"type\" that is not a string.", "Fix or remove that entry.")
    low = given.strip().lower()
    low = TYPE_ALIASES.get(low, low)
    if low != parsed.type.lower():
        raise UsageError(f"{where} has type {given!r}, but its id names a {parsed.type}.",
                         "Fix the type or the id so that they agree.")


def _label(res: dict[str, Any], index: int) -> str:
    name = res.get("name")
    return f" (name {name!r})" if isinstance(name, str) and name else ""


# ---- children --------------------------------------------------------------------------------
def _lift_children(res: dict[str, Any], index: int, source: str) -> Iterator[dict[str, Any]]:
    """Remove inline child lists from `res` and yield them as entries of their own."""
    for path, seg, kids in inline_lists(res, INLINE_CHILDREN, remove=True):
        if not isinstance(kids, list):
            raise UsageError(f"Entry {index} ({res['id']}) in {source} has a \"{path}\" that is not a list.",
                             "Fix or remove that entry.")
        child_type = f"{res['type']}/{seg}"
        for k, kid in enumerate(kids):
            where = f"Child {k} of \"{path}\" in entry {index} ({res['id']}) in {source}"
            if not isinstance(kid, dict):
                raise UsageError(f"{where} is a JSON {_json_kind(kid)}, not a resource object.",
                                 "Fix or remove that entry.")
            if set(kid) <= {"id"}:
                continue  # a bare reference (ARM lists some children by id only)
            # `res` is the parse's own copy and the list was taken out of it: no copy needed
            if not kid.get("id"):
                kid["id"] = child_id(res["id"], seg, {"name": kid.get("name")})
                if kid["id"] is None:
                    raise UsageError(f"{where} has neither an id nor a name.",
                                     "Give the child its name (or full id).")
            _check_id(kid["id"], where)
            kid["id"] = "/" + kid["id"].strip().strip("/")
            parsed = rid.parse(kid["id"])
            if not rid.same(parsed.parent, res["id"]) or parsed.type.lower() != child_type.lower():
                raise UsageError(f"{where} has id {kid['id']}, which is not a {seg} child of its parent.",
                                 "Fix the child's id or move it to its own entry.")
            _check_type(kid, parsed, where)
            kid["type"] = parsed.type
            kid.setdefault("name", parsed.name)
            yield kid


def _with_resource_groups(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every resource group named in an id an entry, so the sandbox can list and GET it."""
    have = {r["id"].lower() for r in resources}
    missing: dict[str, dict[str, Any]] = {}
    for r in resources:
        g = rid.resource_group_id(r["id"])
        if g and g.lower() not in have and g.lower() not in missing:
            missing[g.lower()] = {
                "id": g, "name": rid.parse(g).name, "type": "Microsoft.Resources/resourceGroups",
                "location": _region(r.get("location")),
                "properties": {"provisioningState": "Succeeded"},
            }
    return [*missing.values(), *resources] if missing else resources


def _region(location: Any) -> str:
    if isinstance(location, str) and location and location.lower() != "global":
        return location
    return "westeurope"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
