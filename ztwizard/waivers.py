"""Waivers: risks accepted on purpose, kept in a TOML file a reviewer can read (and a repository
can hold), applied to a plan so that a considered "not this one" stops drowning real findings.

A waiver names a check and a scope (one resource and what lies under it, a resource group, or a
subscription), a reason, and optionally an expiry date and who decided. A waived finding keeps its
status and carries the waiver; it counts neither toward its step's status nor the exit codes, and
the change that would fix it is not proposed. An expired waiver stops applying and the plan says so.

The file (default STATE_DIR/waivers.toml, or --waivers FILE):

    [[waiver]]
    id = "w-1a2b3c4d"
    check = "storage-1b"
    resource = "/subscriptions/…/storageAccounts/stlegacy"   # or resource_group = "rg-x"
    reason = "Legacy client needs TLS 1.0 until it is replaced"  #    (+ subscription = "…"),
    expires = 2027-06-30                                        # or subscription = "…"
    by = "alice"
    created = 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from . import resource_id as rid
from .errors import UsageError
from .files import atomic_write
from .model import Finding, StepResult, worst

FILE_NAME = "waivers.toml"
HEADER = ("# ztwizard waivers: risks accepted on purpose. Review changes to this file like code.\n"
          "# `ztwizard waive` adds an entry, `ztwizard unwaive ID` removes one, `ztwizard waivers` lists them.\n")
_KEYS = ("id", "check", "resource", "resource_group", "subscription", "reason", "expires", "by", "created")
_HEADER_RE = re.compile(r"^\s*\[\[\s*waiver\s*\]\]\s*(#.*)?$")
_OPEN = ("fail", "manual", "error")  # findings that want something done


def today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Waiver:
    id: str
    check: str
    reason: str
    resource: str = ""
    resource_group: str = ""
    subscription: str = ""
    expires: date | None = None
    by: str = ""
    created: date | None = None

    def expired(self, today: date) -> bool:
        """Valid through its expiry date, gone the day after."""
        return self.expires is not None and self.expires < today

    def scope(self) -> str:
        if self.resource:
            return self.resource
        if self.resource_group:
            where = f" in subscription {self.subscription}" if self.subscription else ""
            return f"resource group {self.resource_group}{where}"
        return f"subscription {self.subscription}"

    def covers(self, resource_id: str) -> bool:
        """Is `resource_id` inside this waiver's scope (a resource waiver covers its children too)?"""
        if not resource_id:
            return False
        if self.resource:
            mine, other = self.resource.rstrip("/").lower(), resource_id.rstrip("/").lower()
            return other == mine or other.startswith(mine + "/")
        p = rid.parse(resource_id)
        if self.subscription and (p.subscription or "").lower() != self.subscription.lower():
            return False
        if self.resource_group:
            return (p.resource_group or "").lower() == self.resource_group.lower()
        return True

    def matches(self, check: str, resource_id: str) -> bool:
        return check == self.check and self.covers(resource_id)

    def public(self) -> dict[str, Any]:
        """What a waived finding carries (product.md §4)."""
        return {"id": self.id, "reason": self.reason,
                "expires": self.expires.isoformat() if self.expires else None, "by": self.by or None}

    def to_dict(self, today: date | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _KEYS if getattr(self, k)}
        for k in ("expires", "created"):
            if isinstance(out.get(k), date):
                out[k] = out[k].isoformat()
        if today is not None:
            out["expired"] = self.expired(today)
        return out


def waiver_id(check: str, resource: str = "", resource_group: str = "", subscription: str = "") -> str:
    """Derived from what is waived, so the same waiver made twice is recognised."""
    key = "|".join([check, resource.lower().rstrip("/"), resource_group.lower(), subscription.lower()])
    return "w-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def new_waiver(check: str, *, reason: str, resource: str = "", resource_group: str = "", subscription: str = "",
               expires: str | None = None, by: str = "", today: date | None = None) -> Waiver:
    """A waiver from the command line's words, or a UsageError saying what is wrong with them."""
    from .engine import validate_selection

    today = today or today_utc()
    validate_selection([], [check])
    reason = (reason or "").strip()
    if not reason:
        raise UsageError("A waiver needs a reason; an empty one was given.",
                         hint="Say why the risk is accepted: --reason 'Legacy client needs TLS 1.0 until June'.")
    if sum(bool(x) for x in (resource, resource_group)) > 1 or not (resource or resource_group or subscription):
        raise UsageError("A waiver needs exactly one scope.",
                         hint="Pass --resource ID, --resource-group NAME (optionally with --subscription ID) "
                              "or --subscription ID.")
    if resource and subscription:
        raise UsageError("--resource already names its subscription; --subscription cannot narrow it.",
                         hint="Drop --subscription, or waive the whole subscription instead of the resource.")
    resource = resource.strip()
    if resource and (not resource.lower().startswith("/subscriptions/") or not rid.parse(resource).subscription):
        raise UsageError(f"Resource id {resource!r} is not an ARM id.",
                         hint="Pass the full id, e.g. /subscriptions/…/resourceGroups/rg/providers/"
                              "Microsoft.Storage/storageAccounts/name (the plan's resource_id).")
    if subscription and not rid.is_guid(subscription):
        raise UsageError(f"Subscription id {subscription!r} is not a GUID.",
                         hint="Pass the subscription's id, not its name.")
    until = None
    if expires:
        try:
            until = date.fromisoformat(expires)
        except ValueError:
            raise UsageError(f"Expiry {expires!r} is not a date.", hint="Use YYYY-MM-DD, e.g. --expires 2027-06-30.") \
                from None
        if until < today:
            raise UsageError(f"Expiry {until.isoformat()} is in the past (today is {today.isoformat()}).",
                             hint="Give a date from today on, or leave out --expires.")
    wid = waiver_id(check, resource, resource_group, subscription)
    return Waiver(id=wid, check=check, reason=reason, resource=resource, resource_group=resource_group,
                  subscription=subscription, expires=until, by=by.strip(), created=today)


# ---- the file ----------------------------------------------------------------------------------

def default_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


def load(path: Path, *, must_exist: bool = False) -> list[Waiver]:
    """The file's waivers; a missing file is an empty list unless `must_exist` (a --waivers typo)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise UsageError(f"Waivers file {path} does not exist.",
                             hint="Check the --waivers path; `ztwizard waive` creates the file.") from None
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Waivers file {path} cannot be read: {exc}.", hint="Check its permissions and encoding.") \
            from None
    return parse(text, path)


def parse(text: str, path: Path | str = "waivers.toml") -> list[Waiver]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Waivers file {path} is not valid TOML: {exc}.",
                         hint="Fix the line named; each entry is a [[waiver]] table.") from None
    extra = sorted(set(data) - {"waiver"})
    if extra:
        raise UsageError(f"Waivers file {path} has an unknown top-level key {extra[0]!r}.",
                         hint="The file holds only [[waiver]] tables.")
    entries = data.get("waiver", [])
    if not isinstance(entries, list):
        raise UsageError(f"Waivers file {path}: `waiver` must be an array of tables ([[waiver]]).",
                         hint="Write each entry under a [[waiver]] header.")
    lines = _header_lines(text)
    out: list[Waiver] = []
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries):
        where = f"Waivers file {path}, waiver {n + 1}" + (f" (line {lines[n]})" if n < len(lines) else "")
        w = _entry(entry, where)
        if w.id in seen:
            raise UsageError(f"{where}: id {w.id!r} is used twice.", hint="Give every waiver its own id.")
        seen[w.id] = n
        out.append(w)
    return out


def _header_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines()) if _HEADER_RE.match(line)]


def _entry(entry: Any, where: str) -> Waiver:
    from .steps import CHECK_BY_ID

    hint = "Each waiver has id, check, reason and one of resource, resource_group or subscription (see README)."
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a table.", hint=hint)
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}.", hint=hint)
    for key in ("id", "check", "reason", "resource", "resource_group", "subscription", "by"):
        if key in entry and not isinstance(entry[key], str):
            raise UsageError(f"{where}: {key} must be a string.", hint=hint)
    for key in ("id", "check", "reason"):
        if not str(entry.get(key, "")).strip():
            raise UsageError(f"{where}: {key} is missing or empty.", hint=hint)
    if entry["check"] not in CHECK_BY_ID:
        raise UsageError(f"{where}: unknown check id {entry['check']!r}.", hint="`ztwizard steps` lists the checks.")
    scopes = [k for k in ("resource", "resource_group") if entry.get(k)]
    if len(scopes) > 1 or not (scopes or entry.get("subscription")) or (entry.get("resource") and
                                                                       entry.get("subscription")):
        raise UsageError(f"{where}: give exactly one of resource, resource_group (with an optional subscription) "
                         "or subscription.", hint=hint)
    if entry.get("subscription") and not rid.is_guid(entry["subscription"]):
        raise UsageError(f"{where}: subscription {entry['subscription']!r} is not a GUID.", hint=hint)
    if entry.get("resource") and not entry["resource"].lower().startswith("/subscriptions/"):
        raise UsageError(f"{where}: resource {entry['resource']!r} is not an ARM id.", hint=hint)
    dates: dict[str, date | None] = {}
    for key in ("expires", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise UsageError(f"{where}: {key} {value!r} is not a date.", hint="Write dates as 2027-06-30.") \
                    from None
        if value is not None and not isinstance(value, date):
            raise UsageError(f"{where}: {key} must be a date.", hint="Write dates as 2027-06-30.")
        dates[key] = value
    return Waiver(id=entry["id"].strip(), check=entry["check"], reason=entry["reason"].strip(),
                  resource=entry.get("resource", ""), resource_group=entry.get("resource_group", ""),
                  subscription=entry.get("subscription", ""), expires=dates["expires"], by=entry.get("by", ""),
                  created=dates["created"])


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_toml(w: Waiver) -> str:
    lines = ["[[waiver]]"]
    for key in _KEYS:
        value = getattr(w, key)
        if not value:
            continue
        lines.append(f"{key} = {value.isoformat() if isinstance(value, date) else toml_string(value)}")
    return "\n".join(lines) + "\n"


def dump(waivers: Iterable[Waiver]) -> str:
    return HEADER + "".join("\n" + to_toml(w) for w in waivers)


def add(path: Path, waiver: Waiver) -> None:
    """Append `waiver` to the file, leaving every other line (entries, comments) as it was."""
    path = Path(path)
    current = load(path)
    for w in current:
        if w.id == waiver.id:
            raise UsageError(f"This is already waived by {w.id} ({w.check} on {w.scope()}).",
                             hint=f"Remove it first with `ztwizard unwaive {w.id}` to change its reason or expiry.")
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    _write(path, text + "\n" + to_toml(waiver), [*current, waiver])


def remove(path: Path, waiver_id: str) -> Waiver:
    """Remove one waiver by id; the rest of the file is kept line for line."""
    path = Path(path)
    current = load(path)
    index = next((i for i, w in enumerate(current) if w.id == waiver_id), None)
    if index is None:
        known = ", ".join(w.id for w in current) or "none"
        raise UsageError(f"No waiver with id {waiver_id!r} in {path}.",
                         hint=f"`ztwizard waivers` lists them (ids: {known}).")
    keep = [w for i, w in enumerate(current) if i != index]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER_RE.match(line)]
    text = None
    if len(headers) == len(current):
        start = headers[index]
        end = headers[index + 1] if index + 1 < len(headers) else len(lines)
        while end > start + 1 and lines[end - 1].lstrip().startswith("#"):  # comments above the next entry
            end -= 1
        while start > 0 and not lines[start - 1].strip():  # the blank line that separated it
            start -= 1
        text = "".join(lines[:start] + lines[end:])
    _write(path, text, keep)
    return current[index]


def _write(path: Path, text: str | None, expected: list[Waiver]) -> None:
    """Write `text` if it reads back as exactly `expected`; otherwise rewrite the file from the
    entries (a hand-edited layout the line edit could not follow)."""
    if text is None or _reads_back(text) != expected:
        text = dump(expected)
    atomic_write(path, text.encode("utf-8"), mode=0o600)


def _reads_back(text: str) -> list[Waiver] | None:
    try:
        return parse(text)
    except UsageError:
        return None


# ---- applying waivers to a plan ----------------------------------------------------------------

def apply_waivers(plan: Any, waivers: Iterable[Waiver], today: date | None = None) -> Any:
    """Mark waived findings, withhold the changes that would fix only waived findings (and the
    changes that exist only for those), and recompute step statuses without waived findings.
    Expired waivers do not apply; the plan notes each one whose check ran."""
    today = today or today_utc()
    waivers = list(waivers)
    active = [w for w in waivers if not w.expired(today)]
    ran = {f.check for s in plan.steps for f in s.findings}
    for w in waivers:
        if w.expired(today) and w.check in ran and w.expires is not None:
            plan.notes.append({
                "kind": "waiver_expired", "waiver": w.id, "check": w.check, "scope": w.scope(),
                "expires": w.expires.isoformat(),
                "message": f"Waiver {w.id} ({w.check} on {w.scope()}) expired on {w.expires.isoformat()}; "
                           "its findings count again."})
    withheld: dict[str, str] = {}
    for step in plan.steps:
        withheld.update(waive_step(step, active))
    if withheld:
        withhold_changes(plan.steps, withheld, plan.notes, "waived")
    return plan


def waive_step(step: StepResult, active: list[Waiver]) -> dict[str, str]:
    """Mark the step's waived findings and recompute its status; returns {change id: waiver id}
    of the changes to withhold (the caller drops them, with their dependents)."""
    for f in step.findings:  # a passing finding needs no waiver; it gains one the day it fails
        w = next((w for w in active if w.matches(f.check, f.resource_id)), None) if f.status in _OPEN else None
        f.waiver = w.public() if w else None
    if not any(f.waiver for f in step.findings):
        return {}
    unwaived = [f.status for f in step.findings if not f.waiver]
    step.status = worst(unwaived) if unwaived else "pass"
    out: dict[str, str] = {}
    for ch in step.changes:
        of_check = [f for f in step.findings if f.check == ch.check and f.status in _OPEN]
        related = [f for f in of_check if _related(ch.resource_id, ch.body, ch.after, f)]
        if related:
            if all(f.waiver for f in related):
                out[ch.id] = str(related[0].waiver["id"])  # type: ignore[index]
            continue
        covering = next((w for w in active if w.matches(ch.check, ch.resource_id)), None)
        if covering:
            out[ch.id] = covering.id
        elif of_check and all(f.waiver for f in of_check):  # nothing of this check is left to fix
            out[ch.id] = str(of_check[0].waiver["id"])  # type: ignore[index]
    return out


def _related(resource_id: str, body: Any, after: Any, f: Finding) -> bool:
    """Does a change touch the finding's resource: the same one, a child or parent of it, or a
    change whose body points at it (a private endpoint for an account)?"""
    mine, theirs = resource_id.rstrip("/").lower(), (f.resource_id or "").rstrip("/").lower()
    if not theirs or theirs.count("/") < 3:  # a subscription-wide finding points at nothing
        return mine == theirs
    if mine == theirs or mine.startswith(theirs + "/") or theirs.startswith(mine + "/"):
        return True
    blob = json.dumps([body, after]).lower()
    return re.search(re.escape(theirs) + r'(["/]|$)', blob) is not None


def withhold_changes(steps: list[StepResult], withheld: dict[str, str], notes: list[dict[str, Any]], why: str) -> None:
    """Drop the withheld changes and, transitively, the changes that need one of them and the
    prerequisites left serving none; each knock-on drop gets a note."""
    changes = {c.id: c for s in steps for c in s.changes}
    needed_by: dict[str, list[str]] = {}
    for c in changes.values():
        for d in c.depends_on:
            needed_by.setdefault(d, []).append(c.id)
    dropped = dict(withheld)
    moved = True
    while moved:
        moved = False
        for c in changes.values():
            if c.id in dropped:
                continue
            gone = [d for d in c.depends_on if d in dropped]
            if gone:
                dropped[c.id] = gone[0]
                notes.append({"kind": f"{why}_dependency", "change": c.id, "check": c.check,
                              "resource_id": c.resource_id, "needs": gone[0],
                              "message": f"{c.check}: {describe(c)} is not proposed: it needs {gone[0]}, "
                                         f"which is {_WHY[why]}."})
                moved = True
                continue
            users = needed_by.get(c.id, [])
            if users and all(u in dropped for u in users) and _serves_nothing(c, steps, dropped):
                dropped[c.id] = users[0]
                moved = True
    for s in steps:
        s.changes = [c for c in s.changes if c.id not in dropped]


def describe(c: Any) -> str:
    """A change as a person names it: its title, else its method and resource."""
    return str(c.title) if c.title else f"{c.method} {c.resource_id.rsplit('/', 1)[-1]} ({c.id})"


_WHY = {"waived": "withheld by a waiver", "scope": "left out because of -g"}


def _serves_nothing(c: Any, steps: list[StepResult], dropped: dict[str, str]) -> bool:
    """A prerequisite is only kept for its own sake when it fixes an open, unwaived finding."""
    for s in steps:
        for f in s.findings:
            if f.check == c.check and f.status in _OPEN and not f.waiver and \
                    _related(c.resource_id, c.body, c.after, f):
                return False
    return True
