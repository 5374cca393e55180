"""Saved plans: what a change ticket approved is what runs (`plan --out FILE`, `apply FILE`).

The file records the target and scope the plan was made for, and every proposed change with a
fingerprint of its resource as read when the plan was saved: ARM's etag where the resource has
one, otherwise a sha256 of the properties the change touches (storage accounts and Defender
pricings carry no etag on real ARM). Applying re-reads each resource first; a change whose
fingerprint moved is refused and named, and what depends on it waits, while the rest proceeds.
The file is JSON, mode 0600, scrubbed of secrets like the journal."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .armjson import dotted, get_path, leaves, parse_path, side
from .errors import UsageError
from .files import atomic_write
from .journal import scrub
from .model import Change
from .steps import step_of

SCHEMA = "ztwizard.planfile/v1"
ALREADY = "already holds this change (applied since the plan was saved)"  # skipped, not refused
_CHANGE_KEYS = {"id": str, "check": str, "resource_id": str, "action": str, "method": str,
                "before": dict, "after": dict, "depends_on": list, "fingerprint": dict, "step": str}


@dataclass
class SavedPlan:
    path: Path
    target: dict[str, Any]
    selection: dict[str, Any]
    changes: list[Change]
    steps: dict[str, str]  # change id -> step id
    fingerprints: dict[str, dict[str, Any]]
    redacted: set[str] = field(default_factory=set)  # changes whose body lost a secret when saved
    created_at: str = ""


# ---- fingerprints ------------------------------------------------------------------------------

def touched_paths(ch: Change) -> list[tuple[str, ...]]:
    return sorted(set(leaves(ch.before)) | set(leaves(ch.after)))


def fingerprint(ch: Change, resource: dict[str, Any] | None,
                paths: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    if resource is None:
        return {"absent": True}
    if resource.get("etag"):
        return {"etag": resource["etag"]}
    paths = touched_paths(ch) if paths is None else paths
    values = [[dotted(p), get_path(resource, p)] for p in paths]
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return {"sha256": digest, "properties": [dotted(p) for p in paths]}


def _read_all(gateway: Any, resource_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    unique = list(dict.fromkeys(r.lower() for r in resource_ids))
    by_lower = {r.lower(): r for r in resource_ids}
    workers = max(1, min(getattr(gateway, "max_workers", 4), len(unique) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda k: gateway.read(by_lower[k]), unique))  # the gateway retries
    return dict(zip(unique, results, strict=True))


def drift(saved: SavedPlan, gateway: Any) -> dict[str, str]:
    """{change id: why} for every change whose resource moved since the plan was saved."""
    now = _read_all(gateway, [c.resource_id for c in saved.changes])
    out: dict[str, str] = {}
    for ch in saved.changes:
        was = saved.fingerprints[ch.id]
        cur = now[ch.resource_id.lower()]
        if was.get("absent"):
            if cur is not None:
                out[ch.id] = "was created by someone else since the plan was saved"
            continue
        if cur is None:
            out[ch.id] = "was deleted since the plan was saved"
        elif ch.action == "update" and side(cur, ch.before, ch.after) == "after":
            out[ch.id] = ALREADY
        elif "etag" in was:
            if cur.get("etag") != was["etag"]:
                out[ch.id] = f"changed since the plan was saved (etag {was['etag']} is now {cur.get('etag')})"
        else:
            paths = [parse_path(p) for p in was.get("properties", [])]
            if fingerprint(ch, {k: v for k, v in cur.items() if k != "etag"}, paths)["sha256"] != was.get("sha256"):
                out[ch.id] = ("changed since the plan was saved (" + ", ".join(was.get("properties", [])) +
                              " no longer hold what the plan read)")
    return out


# ---- writing -----------------------------------------------------------------------------------

def target_of(gateway: Any, plan: Any) -> dict[str, Any]:
    t = gateway.target
    return {"kind": t.kind, "endpoint": t.label or t.endpoint, "cloud": getattr(t, "cloud", ""),
            "subscriptions": sorted(plan.target.get("subscriptions") or t.subscriptions),
            "resource_groups": sorted(t.resource_groups)}


def build(plan: Any, gateway: Any, selection: dict[str, Any]) -> dict[str, Any]:
    """The saved plan: scope, selection, and every change with its resource's fingerprint."""
    changes = plan.changes()
    read = _read_all(gateway, [c.resource_id for c in changes])
    rows = []
    for ch in changes:
        row = ch.to_dict()
        clean = scrub(row)
        if clean != row:
            clean["redacted"] = True  # apply refuses it rather than send a placeholder
        clean["step"] = step_of(ch.check)
        clean["fingerprint"] = fingerprint(ch, read[ch.resource_id.lower()])
        rows.append(clean)
    return {"schema": SCHEMA, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ztwizard": __version__, "target": target_of(gateway, plan),
            "selection": {"steps": list(selection.get("steps") or []), "checks": list(selection.get("checks") or [])},
            "summary": plan.summary(), "notes": scrub(plan.notes), "changes": rows}


def check_out_path(out: str, output: str | None) -> Path:
    dest = Path(out)
    if dest.is_dir():
        raise UsageError(f"Plan file {dest} is a directory.", hint="Pass a file name to --out.")
    if not dest.parent.exists():
        raise UsageError(f"Directory {dest.parent} does not exist.", hint="Create it or pick another --out path.")
    if output and Path(output).resolve() == dest.resolve():
        raise UsageError("--out and --output name the same file.",
                         hint="--out saves the plan for `apply FILE`; --output is the report for people.")
    return dest


def save(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)


# ---- reading -----------------------------------------------------------------------------------

def load(path: str | Path) -> SavedPlan:
    """The saved plan at `path`, or a UsageError naming what makes it unusable."""
    from .steps import CHECK_BY_ID

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Plan file {path} does not exist.", hint="Save one with `ztwizard plan --out FILE`.") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Plan file {path} cannot be read: {exc}.", hint="Check the path and its permissions.") \
            from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"Plan file {path} is not JSON ({exc.msg} at line {exc.lineno}).",
                         hint="Save plans with `ztwizard plan --out FILE`; do not edit them by hand.") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        hint = ("That is a plan report (`plan --format json`); save an appliable plan with `plan --out FILE`."
                if schema == "ztwizard.plan/v1" else "Save one with `ztwizard plan --out FILE`.")
        raise UsageError(f"{path} is not a ztwizard plan file (schema {schema!r}, expected {SCHEMA!r}).", hint=hint)
    target, selection, rows = data.get("target"), data.get("selection", {}), data.get("changes")
    if not isinstance(target, dict) or not isinstance(target.get("subscriptions"), list) or \
            not isinstance(target.get("kind"), str) or not isinstance(rows, list) or not isinstance(selection, dict):
        raise UsageError(f"Plan file {path} is malformed: target, selection or changes missing.",
                         hint="Save the plan again with `ztwizard plan --out FILE`.")
    changes: list[Change] = []
    steps: dict[str, str] = {}
    fps: dict[str, dict[str, Any]] = {}
    redacted: set[str] = set()
    subs = {str(s).lower() for s in target["subscriptions"]}
    for n, row in enumerate(rows):
        where = f"Plan file {path}, change {n + 1}"
        hint = "Save the plan again with `ztwizard plan --out FILE`; do not edit it by hand."
        if not isinstance(row, dict):
            raise UsageError(f"{where} is not an object.", hint=hint)
        for key, kind in _CHANGE_KEYS.items():
            if not isinstance(row.get(key), kind):
                raise UsageError(f"{where}: {key} is missing or not a {kind.__name__}.", hint=hint)
        if row["method"] not in ("PUT", "PATCH", "DELETE") or row["action"] not in ("update", "create", "delete"):
            raise UsageError(f"{where}: method {row['method']!r} / action {row['action']!r} is not one ztwizard sends.",
                             hint=hint)
        if row["check"] not in CHECK_BY_ID:
            raise UsageError(f"{where}: unknown check {row['check']!r} (saved by another ztwizard version?).",
                             hint="Make the plan again with this version.")
        if not isinstance(row.get("instead_of", ""), str):
            raise UsageError(f"{where}: instead_of must be a change id.", hint=hint)
        if row.get("body") is not None and not isinstance(row["body"], dict):
            raise UsageError(f"{where}: body must be an object.", hint=hint)
        if row["id"] in fps:
            raise UsageError(f"{where}: change id {row['id']!r} appears twice.", hint=hint)
        sub = row["resource_id"].split("/")[2].lower() if row["resource_id"].lower().startswith("/subscriptions/") \
            else ""
        if sub not in subs:
            raise UsageError(f"{where}: {row['resource_id']} lies outside the plan's subscriptions.", hint=hint)
        fp = row["fingerprint"]
        if not (fp.get("absent") is True or isinstance(fp.get("etag"), str) or
                (isinstance(fp.get("sha256"), str) and isinstance(fp.get("properties"), list))):
            raise UsageError(f"{where}: its fingerprint is not etag, sha256 or absent.", hint=hint)
        changes.append(Change.from_dict(row))
        steps[row["id"]] = row["step"]
        fps[row["id"]] = fp
        if row.get("redacted"):
            redacted.add(row["id"])
    return SavedPlan(path=path, target=target, selection=selection, changes=changes, steps=steps,
                     fingerprints=fps, redacted=redacted, created_at=str(data.get("created_at", "")))


def check_target(saved: SavedPlan, gateway: Any, subscriptions: list[str] | None,
                 resource_groups: list[str] | None) -> None:
    """Refuse (exit 2) a plan saved for another target or scope, saying how they differ."""
    t, want = gateway.target, saved.target
    here = t.label or t.endpoint
    hint = "Apply a plan on the target and scope it was made for, or make a new plan here."
    if want["kind"] != t.kind:
        raise UsageError(f"{saved.path} was saved for a {want['kind']} target ({want.get('endpoint', '')}); "
                         f"this is a {t.kind} target ({here}); nothing was changed.", hint=hint)
    if t.kind == "azure" and str(want.get("endpoint", "")).rstrip("/").lower() != here.rstrip("/").lower():
        raise UsageError(f"{saved.path} was saved for {want.get('endpoint')}; this target is {here}; "
                         "nothing was changed.", hint=hint)
    subs = sorted(s.lower() for s in want["subscriptions"])
    if subscriptions and sorted(s.lower() for s in subscriptions) != subs:
        raise UsageError(f"{saved.path} was saved for subscriptions {', '.join(want['subscriptions'])}; "
                         f"-s names {', '.join(subscriptions)}; nothing was changed.", hint=hint)
    groups = sorted(g.lower() for g in want.get("resource_groups") or [])
    if resource_groups is not None and resource_groups and sorted(g.lower() for g in resource_groups) != groups:
        raise UsageError(f"{saved.path} was saved for resource groups {', '.join(groups) or '(all)'}; "
                         f"-g names {', '.join(resource_groups)}; nothing was changed.", hint=hint)
    visible = {s.lower() for s in gateway.list_subscriptions()}
    missing = [s for s in want["subscriptions"] if s.lower() not in visible]
    if missing:
        raise UsageError(f"{saved.path} was saved for subscription {missing[0]}, which this target does not have "
                         "(another tenant or sandbox?); nothing was changed.", hint=hint)


def blocked_by(saved: SavedPlan, refused: dict[str, str]) -> dict[str, str]:
    """The changes that need a refused one, transitively: {change id: why}."""
    out: dict[str, str] = {}
    moved = True
    while moved:
        moved = False
        for ch in saved.changes:
            if ch.id in refused or ch.id in out:
                continue
            # a stand-in waits for the broader change it replaces, as the apply would have it
            dep = next((d for d in [*ch.depends_on, ch.instead_of] if d in refused or d in out), None)
            if dep:
                out[ch.id] = f"depends on {dep}, which was not applied"
                moved = True
    return out
