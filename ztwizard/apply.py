"""Apply a plan's changes to ARM, write-ahead journaled, never clobbering a resource that moved.

Per change: re-read the resource, check it still holds what the plan saw, commit the write-ahead
row (before-image, body, etag), send the write with If-Match where the resource has an etag,
commit the outcome. Afterwards the touched steps are re-inspected, so the report says what ARM
actually holds rather than what the wizard hoped for."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import journal as J
from .engine import order_changes
from .errors import ArmError, Conflict, EtagMismatch, NotFound, PermissionDenied, UsageError, ZtwError
from .model import Change, StepResult
from .remedy import READ_ONLY_KEYS, writable

Confirm = Callable[[str, list[Change]], bool]


# ---- comparing what ARM holds with what a change says -----------------------------------------

Path = tuple[str, ...]


def leaves(tree: Any, prefix: Path = ()) -> dict[Path, Any]:
    """{"properties": {"a": {"b": 1}}} -> {("properties", "a", "b"): 1}. Lists and empty dicts are
    leaves. Paths are tuples because ARM keys may hold dots (`odata.type`)."""
    if isinstance(tree, dict) and tree:
        out: dict[Path, Any] = {}
        for k, v in tree.items():
            out.update(leaves(v, (*prefix, str(k))))
        return out
    return {prefix: tree} if prefix else {}


def dotted(path: Path) -> str:
    return ".".join(path)


def get_at(obj: Any, path: Path) -> Any:
    """The value at `path` (keys matched case-insensitively, as ARM does), or None."""
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        if key in cur:
            cur = cur[key]
            continue
        match = next((k for k in cur if str(k).lower() == key.lower()), None)
        if match is None:
            return None
        cur = cur[match]
    return cur


def set_at(obj: dict[str, Any], path: Path, value: Any) -> None:
    """Set `path` (None removes it), reusing existing keys whatever their case."""
    cur = obj
    for key in path[:-1]:
        match = next((k for k in cur if str(k).lower() == key.lower()), key)
        nxt = cur.get(match)
        if not isinstance(nxt, dict):
            if value is None:
                return
            nxt = {}
            cur[match] = nxt
        cur = nxt
    last = next((k for k in cur if str(k).lower() == path[-1].lower()), path[-1])
    if value is None:
        cur.pop(last, None)
    else:
        cur[last] = copy.deepcopy(value)


def same(expected: Any, actual: Any) -> bool:
    """Does ARM's `actual` hold `expected`? Strings compare case-insensitively (ARM's names, ids and
    enums are), dicts as subsets ignoring read-only fields (ARM adds etags and states), lists
    element by element; absent and null are the same."""
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
    """The leaf paths of `tree` that `resource` does not hold."""
    res = resource or {}
    return [p for p, v in leaves(tree).items() if not same(v, get_at(res, p))]


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


def apply_values(base: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """`base` with every leaf of `tree` set (a None leaf removes the property)."""
    out = copy.deepcopy(base)
    for path, value in leaves(tree).items():
        set_at(out, path, value)
    return out


def inverse_tree(before: dict[str, Any], after: dict[str, Any],
                 before_image: dict[str, Any] | None = None) -> dict[str, Any]:
    """What restores `before` over `after`: `before`'s leaves, plus a removal (None) of every
    property the change added that `before` did not have. With the full before-image, a removal
    takes out the outermost object that did not exist then (not just an emptied shell)."""
    had = leaves(before)
    removals: list[Path] = []
    for path in leaves(after):
        if path in had and had[path] is not None:
            continue
        if path not in had and any(path[:i] in had for i in range(1, len(path))):
            continue
        removals.append(path)
    out = copy.deepcopy(before)
    for path in removals:
        top = path
        if before_image is not None:
            for i in range(1, len(path) + 1):
                if get_at(before_image, path[:i]) is None:
                    top = path[:i]
                    break
        _set_none(out, top)
    return out


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


_STEP_RE = re.compile(r"^([a-z]+-\d+)")


def step_of(check_id: str) -> str:
    """The step a check belongs to (catalog first, then the id's shape: storage-1b -> storage-1)."""
    try:
        from .steps import STEP_OF_CHECK

        if check_id in STEP_OF_CHECK:
            return STEP_OF_CHECK[check_id].id
    except Exception:  # pragma: no cover - the catalog always imports
        pass
    m = _STEP_RE.match(check_id)
    return m.group(1) if m else check_id


# ---- the report ----------------------------------------------------------------------------

@dataclass
class Outcome:
    change_id: str
    check: str
    step_id: str
    resource_id: str
    title: str
    result: str  # applied | failed | skipped (undo: undone | failed | skipped | refused)
    message: str = ""

    def line(self) -> str:
        name = self.resource_id.rsplit("/", 1)[-1]
        text = f"{self.result:8} {self.check:12} {self.title or self.change_id} ({name})"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class ApplyReport:
    session_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    verification: list[StepResult] = field(default_factory=list)
    verify_error: str = ""

    def _of(self, result: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def applied(self) -> list[Outcome]:
        return self._of("applied")

    @property
    def failed(self) -> list[Outcome]:
        return self._of("failed")

    @property
    def skipped(self) -> list[Outcome]:
        return self._of("skipped")

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [f"Session {self.session_id}: {len(self.applied)} applied, {len(self.failed)} failed, "
               f"{len(self.skipped)} skipped."]
        out += ["  " + o.line() for o in self.outcomes]
        if self.verification:
            out.append("Re-inspected after apply (what ARM now holds):")
            for s in self.verification:
                c = s.counts()
                out.append(f"  {s.id:10} {s.status:14} pass {c['pass']}, fail {c['fail']}, manual {c['manual']}, "
                           f"error {c['error']}")
        if self.verify_error:
            out.append(f"Could not re-inspect: {self.verify_error}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session_id,
                "outcomes": [o.__dict__ for o in self.outcomes],
                "verification": [{"id": s.id, "status": s.status, "counts": s.counts()} for s in self.verification]}


class ApplyInterrupted(ZtwError):
    """Apply stopped part-way; `report` says what had been done by then."""

    def __init__(self, message: str, hint: str, report: ApplyReport) -> None:
        super().__init__(message, hint)
        self.report = report


@dataclass
class Event:
    """Progress for a UI: `kind` is start | applied | failed | skipped."""

    kind: str
    change: Change
    step_id: str
    message: str = ""


# ---- sessions ------------------------------------------------------------------------------

def start_session(journal: J.Journal, gateway: Any, changes: Iterable[Change], *,
                  subscriptions: Iterable[str] = (), resource_groups: Iterable[str] = (),
                  selection: dict[str, Any] | None = None) -> str:
    """A new session whose plan is `changes` (recorded as planned rows, in apply order)."""
    target = gateway.target
    sid = journal.create_session(target.kind, getattr(target, "endpoint", "") or "",
                                 subscriptions=subscriptions, resource_groups=resource_groups,
                                 selection=selection)
    journal.record_plan(sid, [(step_of(c.check), c) for c in order_changes(list(changes))])
    return sid


# ---- apply ---------------------------------------------------------------------------------

def refuse_if_read_only(gateway: Any, dry_run: bool, what: str) -> None:
    if dry_run:
        raise UsageError(f"--dry-run is set: {what} refused; nothing was changed.",
                         "Drop --dry-run to write, or use `ztwizard plan` to preview.")
    if getattr(gateway.target, "read_only", False):
        raise UsageError(f"This target is read-only (an estate file): {what} refused; nothing was changed.",
                         "Use --sandbox or Azure to write.")


def apply_changes(gateway: Any, journal: J.Journal, session_id: str, changes: Iterable[Change], *,
                  allow_disruptive: bool = False, allow_cost: bool = False, dry_run: bool = False,
                  confirm: Confirm | None = None, on_event: Callable[[Event], None] | None = None,
                  verify: bool = True, replan: bool = True) -> ApplyReport:
    """Apply `changes` in dependency order within `session_id`; see the module docstring."""
    refuse_if_read_only(gateway, dry_run, "apply")
    batch = order_changes(list(changes))
    batch_ids = {c.id for c in batch}
    journal.record_plan(session_id, [(step_of(c.check), c) for c in batch])
    report = ApplyReport(session_id)
    not_done: set[str] = set()  # failed or skipped in this run: their dependents wait
    decided: dict[str, bool] = {}
    written: dict[str, str | None] = {}  # resource id (lower) -> etag this run left on it
    by_step: dict[str, list[Change]] = {}
    for c in batch:
        by_step.setdefault(step_of(c.check), []).append(c)

    def emit(kind: str, ch: Change, step: str, msg: str = "") -> None:
        if on_event:
            on_event(Event(kind, ch, step, msg))

    def outcome(ch: Change, step: str, result: str, msg: str = "") -> None:
        report.outcomes.append(Outcome(ch.id, ch.check, step, ch.resource_id, ch.title, result, msg))
        if result != "applied":
            not_done.add(ch.id)
        emit(result, ch, step, msg)

    def skip(ch: Change, step: str, reason: str, state: str = J.SKIPPED) -> None:
        journal.update_change(session_id, ch.id, state=state, note=reason, event=reason)
        outcome(ch, step, "skipped", reason)

    for ch in batch:
        step = step_of(ch.check)
        if step not in decided:
            journal.update_session(session_id, step=step)
            decided[step] = True if confirm is None else bool(confirm(step, by_step[step]))
        if not decided[step]:
            skip(ch, step, "declined at the confirmation")
            continue
        if ch.disruptive and not allow_disruptive:
            skip(ch, step, "disruptive (" + (ch.risk or "may interrupt service") + "); pass --allow-disruptive")
            continue
        if ch.billable and not allow_cost:
            skip(ch, step, "billable (creates a paid resource); pass --allow-cost")
            continue
        blocked = [d for d in ch.depends_on if d in not_done]
        if blocked:
            skip(ch, step, f"depends on {', '.join(blocked)}, which was not applied")
            continue
        absent = [d for d in ch.depends_on if d not in batch_ids and not _applied_before(journal, session_id, d)]
        if absent:
            # A prerequisite from a step that was not selected: writing now would point at
            # something that does not exist yet (ARM refuses, or worse, accepts a dangling id).
            steps = sorted({step_of(d.rsplit("-", 1)[0]) for d in absent})
            skip(ch, step, f"needs {', '.join(absent)} first; include --step {' --step '.join(steps)}")
            continue
        emit("start", ch, step)
        try:
            _apply_one(gateway, journal, session_id, ch, step, written, replan, outcome, skip)
        except (ZtwError, KeyboardInterrupt) as exc:
            # ARM is unreachable, or the person pressed Ctrl-C: what is in flight stays recorded.
            why = exc.message if isinstance(exc, ZtwError) else "Interrupted."
            journal.log(session_id, "interrupted", why, ch.id)
            raise ApplyInterrupted(
                f"{why} Apply stopped: {len(report.applied)} change(s) applied (listed above), {ch.id} may be "
                "in flight, the rest not attempted.", "Run `ztwizard resume` to reconcile it.", report) from exc
    journal.update_session(session_id, status=J.DONE)
    if verify:
        _verify(gateway, journal, session_id, report)
    return report


TRANSIENT = {408, 429, 500, 502, 503, 504}
ATTEMPTS = 4  # per change, on top of the pipeline's own retries


# provisioningState values of a resource whose last write is still being carried out.
BUSY = {"accepted", "creating", "updating", "deleting", "provisioning"}
SETTLE_SECONDS = 120.0


def _applied_before(journal: J.Journal, session_id: str, change_id: str) -> bool:
    """A prerequisite the same session already applied (a resumed session continues here)."""
    try:
        return journal.change(session_id, change_id).state == J.APPLIED
    except UsageError:
        return False


def transient(exc: ZtwError) -> bool:
    """Worth another try: throttling, a server error, a dropped connection (not an ARM answer), or
    another operation still running on the resource."""
    if isinstance(exc, Conflict) and exc.code == "AnotherOperationInProgress":
        return True
    return not isinstance(exc, ArmError) or exc.status in TRANSIENT


def pause(exc: ZtwError, attempt: int) -> None:
    """Before another try: the pipeline already backed off for 429/5xx, not for a busy resource."""
    if isinstance(exc, Conflict):
        time.sleep(min(0.5 * 2 ** attempt, 5.0))


def settled_read(gateway: Any, resource_id: str, timeout: float = SETTLE_SECONDS) -> dict[str, Any] | None:
    """The resource once no write is under way on it (an interrupted run may have left an LRO
    going): judging or writing it mid-operation would be judging a moving target."""
    delay, deadline = 0.25, time.monotonic() + timeout
    while True:
        res = read_resource(gateway, resource_id)
        state = str(get_at(res or {}, ("properties", "provisioningState")) or "").lower()
        if state not in BUSY or time.monotonic() >= deadline:
            return res
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def read_resource(gateway: Any, resource_id: str) -> dict[str, Any] | None:
    """gateway.read with a few more tries on transient failures; the last failure propagates."""
    for attempt in range(ATTEMPTS):
        try:
            return gateway.read(resource_id)  # type: ignore[no-any-return]
        except ZtwError as exc:
            if attempt == ATTEMPTS - 1 or not transient(exc) or isinstance(exc, PermissionDenied):
                raise
    return None  # pragma: no cover


def _apply_one(gateway: Any, journal: J.Journal, session_id: str, ch: Change, step: str,
               written: dict[str, str | None], replan: bool,
               outcome: Callable[..., None], skip: Callable[..., None]) -> None:
    for attempt in range(ATTEMPTS):
        try:
            cur = settled_read(gateway, ch.resource_id)
        except PermissionDenied as exc:
            journal.update_change(session_id, ch.id, state=J.FAILED, error=exc.message, event=exc.message)
            outcome(ch, step, "failed", exc.message)
            return
        if attempt and _landed(ch, cur):
            # An earlier attempt reached ARM although its answer was lost.
            _applied(journal, session_id, ch, step, cur, written, outcome, "")
            return
        reason = _stale(ch, cur)
        if reason.startswith("already holds") and ch.resource_id.lower() in written:
            skip(ch, step, "already in place after an earlier change in this session")
            return
        if reason and replan and ch.resource_id.lower() in written and cur is not None \
                and cur.get("etag") == written[ch.resource_id.lower()]:
            # Our own earlier write in this run moved the resource: plan this change afresh.
            fresh = _replan(gateway, ch)
            if fresh is None:
                skip(ch, step, "already in place after an earlier change in this session")
                return
            ch = fresh
            journal.update_change(session_id, ch.id, plan_before=ch.before, plan_after=ch.after, body=ch.body,
                                  etag_before=ch.etag, event="re-planned after an earlier change to the same resource")
            reason = _stale(ch, cur)
        if reason:
            skip(ch, step, reason)
            return
        body = _body(ch, cur)
        etag = (cur or {}).get("etag")
        journal.update_change(session_id, ch.id, state=J.IN_FLIGHT, before_image=cur, body=body,
                              etag_before=etag, error=None, note=None, event=f"{ch.method} sent")
        try:
            result = gateway.write(ch.method, ch.resource_id, body, etag=etag)
        except EtagMismatch as exc:
            now = read_resource(gateway, ch.resource_id)
            if _landed(ch, now):  # a retried request whose first try had landed
                _applied(journal, session_id, ch, step, now, written, outcome, "")
                return
            msg = "changed by someone else since it was read (412); nothing was overwritten; re-run the plan"
            journal.update_change(session_id, ch.id, state=J.NOT_APPLIED, error=exc.message, note=msg,
                                  after_image=now, event=msg)
            outcome(ch, step, "skipped", msg)
            return
        except ZtwError as exc:
            now = read_resource(gateway, ch.resource_id)  # unreachable ARM propagates: resume settles it
            if not isinstance(exc, (PermissionDenied, NotFound)) and _landed(ch, now):
                note = "" if transient(exc) else f"ARM reported an error but the resource holds the change: {exc.message}"
                _applied(journal, session_id, ch, step, now, written, outcome, note)
                return
            if transient(exc) and attempt < ATTEMPTS - 1:
                journal.log(session_id, "retry", exc.message, ch.id)
                pause(exc, attempt)
                continue
            journal.update_change(session_id, ch.id, state=J.FAILED, error=exc.message, after_image=now,
                                  event=exc.message)
            outcome(ch, step, "failed", exc.message)
            return
        after = result if ch.method != "DELETE" else None
        if ch.method != "DELETE" and (after is None or not _landed(ch, after)):
            after = _safe_read(gateway, ch.resource_id) or after
        note = ""
        if not _landed(ch, after):
            note = "ARM accepted the write but does not hold the values: " + ", ".join(
                map(dotted, mismatches(after, ch.after)) if ch.method != "DELETE" else ["the resource still exists"])
        _applied(journal, session_id, ch, step, after, written, outcome, note)
        return


def _applied(journal: J.Journal, session_id: str, ch: Change, step: str, after: dict[str, Any] | None,
             written: dict[str, str | None], outcome: Callable[..., None], note: str) -> None:
    journal.update_change(session_id, ch.id, state=J.APPLIED, result_etag=(after or {}).get("etag"),
                          after_image=after, note=note or None, event="applied")
    written[ch.resource_id.lower()] = (after or {}).get("etag")
    outcome(ch, step, "applied", note)


def _stale(ch: Change, cur: dict[str, Any] | None) -> str:
    """Why the resource no longer matches the plan ('' when it does)."""
    if ch.action == "create":
        if cur is not None:
            return "already exists (created since the plan); re-run the plan"
        return ""
    if cur is None:
        return "ARM does not find it (deleted since the plan?); nothing was sent; re-run the plan"
    if ch.action == "delete":
        return "" if holds(cur, ch.before) else "changed since the plan; re-run the plan"
    where = side(cur, ch.before, ch.after)
    if where == "before":
        return ""
    if where == "after":
        return "already holds the change (set since the plan)"
    return "changed since the plan (" + ", ".join(map(dotted, mismatches(cur, ch.before))) + "); re-run the plan"


def _landed(ch: Change, res: dict[str, Any] | None) -> bool:
    if ch.method == "DELETE":
        return res is None
    return res is not None and side(res, ch.before, ch.after) == "after"


def _body(ch: Change, cur: dict[str, Any] | None) -> dict[str, Any] | None:
    """PATCH sends only what changes; an update PUT re-applies `after` onto the fresh read, so a
    stale full body never overwrites someone's unrelated edit."""
    if ch.method == "DELETE":
        return None
    if ch.method == "PUT" and ch.action == "update" and cur is not None:
        return apply_values(writable(cur), ch.after)
    return copy.deepcopy(ch.body)


def _replan(gateway: Any, ch: Change) -> Change | None:
    from . import resource_id as rid
    from .engine import inspect

    sub = rid.parse(ch.resource_id).subscription
    plan = inspect(gateway, check_ids=[ch.check], subscriptions=[sub] if sub else None)
    for c in plan.changes():
        if c.id == ch.id:
            return c
    return None


def _safe_read(gateway: Any, resource_id: str) -> dict[str, Any] | None:
    try:
        return read_resource(gateway, resource_id)
    except ZtwError:
        return None


def _verify(gateway: Any, journal: J.Journal, session_id: str, report: ApplyReport) -> None:
    from .engine import inspect

    steps = sorted({o.step_id for o in report.outcomes if o.result == "applied"})
    if not steps:
        return
    info = journal.session(session_id)
    try:
        plan = inspect(gateway, step_ids=steps, subscriptions=info.subscriptions or None,
                       resource_groups=info.resource_groups or None)
        report.verification = plan.steps
    except ZtwError as exc:
        report.verify_error = exc.message
