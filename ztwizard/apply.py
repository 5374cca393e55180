"""Apply a plan's changes to ARM, write-ahead journaled, never clobbering a resource that moved.

Per change: read the resource (once no operation is running on it), check it still holds what
the plan saw, commit the write-ahead row (before-image, body, etag), send the write with If-Match
where the resource has an etag, commit the outcome. Transient failures are retried by the
gateway's one retry policy, not here; a write whose answer was lost is recognised by reading the
resource back. Afterwards the touched steps are re-inspected, so the report says what ARM
actually holds rather than what the wizard hoped for."""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from . import journal as J
from . import power
from . import resource_id as rid
from .adopt import own_creation
from .armjson import apply_values, dotted, get_path, holds, mismatches, side, writable
from .engine import order_changes
from .errors import (
    ArmError,
    EtagMismatch,
    NotFound,
    OperationTimedOut,
    PermissionDenied,
    UsageError,
    ZtwError,
)
from .model import Change
from .outcomes import BLOCKED_PREFIXES, DEFAULT_PARALLEL, ApplyInterrupted, ApplyReport, Event, Outcome
from .planfile import ALREADY, fingerprint
from .ports import ArmGateway
from .steps import step_of

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARALLEL", "ApplyInterrupted", "ApplyReport", "Confirm", "Event", "Outcome", "apply_changes",
           "refuse_if_read_only", "start_session", "unset_params"]

Confirm = Callable[[str, list[Change]], bool]


# ---- sessions ------------------------------------------------------------------------------

def start_session(journal: J.Journal, gateway: ArmGateway, changes: Iterable[Change], *,
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

def refuse_if_read_only(gateway: ArmGateway, dry_run: bool, what: str) -> None:
    if dry_run:
        raise UsageError(f"--dry-run is set: {what} refused; nothing was changed.",
                         "Drop --dry-run to write, or use `ztwizard plan` to preview.")
    if getattr(gateway.target, "read_only", False):
        raise UsageError(f"This target is read-only (an estate file): {what} refused; nothing was changed.",
                         "Use --sandbox or Azure to write.")


@dataclass
class _Unit:
    """Changes that run one after another on one worker: those of one resource, or of one VM and
    its disks (one deallocation covers them). `after` are the change ids it waits for; `behind`
    the earlier unit of the same resource, which must have finished, not only settled its
    changes: it may still be starting its VM again, and ARM refuses a write to a VM mid-start."""
    key: str
    changes: list[Change]
    after: set[str] = field(default_factory=set)
    behind: _Unit | None = None
    finished: bool = False
    budget: Any = None  # the write budget it draws on while it runs (see _dispatch)


def _units(batch: list[Change], key_of: Callable[[Change], str]) -> list[_Unit]:
    units: list[_Unit] = []
    last_of: dict[str, _Unit] = {}
    for ch in batch:
        key = key_of(ch)
        if units and units[-1].key == key:
            units[-1].changes.append(ch)
            continue
        unit = _Unit(key, [ch])
        if key in last_of:  # changes to one resource stay in plan order
            unit.after |= {c.id for c in last_of[key].changes}
            unit.behind = last_of[key]
        last_of[key] = unit
        units.append(unit)
    batch_ids = {c.id for c in batch}
    for unit in units:
        own = {c.id for c in unit.changes}
        unit.after |= {d for c in unit.changes for d in [*c.depends_on, c.instead_of] if d in batch_ids and d not in own}
    return units


_PROVIDER_PAIR = re.compile(r"^(.*?/providers/[^/]+/[^/]+/[^/]+)", re.IGNORECASE)
# Names ARM keeps unique beyond one resource id: two creates of them must not race.
_TENANT_UNIQUE = ("microsoft.authorization/roledefinitions",)


def unit_key(resource_id: str) -> str:
    """What a change must not run beside: its top-level resource (a storage account with its
    services and keys, a VNet with its subnets), a subscription's settings of one provider, or
    the whole type when its names are unique across the tenant (custom roles)."""
    rtype = rid.type_of(resource_id).lower()
    if rtype in _TENANT_UNIQUE:
        return rtype
    parsed = rid.parse(resource_id)
    if parsed.subscription and not parsed.resource_group and "/providers/" in resource_id.lower():
        # A subscription's settings of one provider (Defender plans and their integrations)
        # build on each other: one after another, in plan order.
        return resource_id.lower().split("/providers/")[0] + "/providers/" + rtype.split("/")[0]
    m = _PROVIDER_PAIR.match(resource_id)
    return m.group(1) if m else resource_id


Headroom = Callable[[str], tuple[Any, float, float]]


def _headroom_of(gateway: ArmGateway) -> Headroom:
    """The gateway's per-(subscription, region, bucket) write budgets; unlimited without a pacer."""
    room = getattr(gateway, "write_headroom", None)
    return room if callable(room) else (lambda _rid: (None, float("inf"), float("inf")))


def apply_changes(gateway: ArmGateway, journal: J.Journal, session_id: str, changes: Iterable[Change], *,
                  allow_disruptive: bool = False, allow_cost: bool = False, dry_run: bool = False,
                  confirm: Confirm | None = None, on_event: Callable[[Event], None] | None = None,
                  verify: bool = True, replan: bool = True, parallel: int = DEFAULT_PARALLEL) -> ApplyReport:
    """Apply `changes` in dependency order within `session_id`; see the module docstring.

    Independent changes run on up to `parallel` workers, given to subscriptions (and regions and
    provider buckets) whose write budget has room, so a throttled one does not hold them; each
    unit (one resource, or one VM and its disks) runs in plan order on one worker, and a unit
    starts only once every change it depends on has its outcome. `confirm`, when given,
    is asked with the previous steps finished, as in a sequential apply."""
    refuse_if_read_only(gateway, dry_run, "apply")
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, not {parallel}.", "Use --parallel 1 to apply one change at a time.")
    batch = order_changes(list(changes))
    batch_ids = {c.id for c in batch}
    journal.record_plan(session_id, [(step_of(c.check), c) for c in batch])
    offline = {c.id for c in batch if c.action == "update" and power.needs_deallocation(c.resource_id, c.after)}
    vm_for, unmet = _power_prerequisites(gateway, [c for c in batch if c.id in offline and allow_disruptive])
    # One deallocation per VM: its changes (and its disks') follow each other where dependencies allow.
    batch = power.batch_by_vm(batch, lambda c: vm_for.get(c.id), lambda moving, other: other.id not in moving.depends_on)
    owner = _disk_owners(gateway, [c for c in batch if c.id not in vm_for], parallel)
    units = _units(batch, lambda c: (vm_for.get(c.id) or owner.get(c.id) or unit_key(c.resource_id)).lower())
    report = ApplyReport(session_id)
    lock = threading.RLock()  # report, outcome sets and on_event are shared by the workers
    not_done: set[str] = set()  # failed or skipped in this run: their dependents wait
    in_place: set[str] = set()  # applied, adopted, or found already holding: what stands in for them is needless
    settled: set[str] = set()  # every change with an outcome in this run
    decided: dict[str, bool] = {}
    written: dict[str, dict[str, Any] | None] = {}  # resource id (lower) -> as this run's last write left it
    by_step: dict[str, list[Change]] = {}
    for c in batch:
        by_step.setdefault(step_of(c.check), []).append(c)
    stopping = threading.Event()
    stops: list[tuple[BaseException, str, str]] = []  # (why, change id in flight, VM left deallocated)

    def emit(kind: str, ch: Change, step: str, msg: str = "") -> None:
        if on_event:
            with lock:
                on_event(Event(kind, ch, step, msg))

    def outcome(ch: Change, step: str, result: str, msg: str = "", holds: bool = False) -> None:
        with lock:
            report.outcomes.append(Outcome(ch.id, ch.check, step, ch.resource_id, ch.title, result, msg))
            log.info("%s %s on %s%s", result, ch.id, ch.resource_id, f": {msg}" if msg else "")
            # An adopted creation is done, and a skip because the resource already holds the
            # change leaves it as applied would: dependents proceed, stand-ins are needless.
            if result in ("applied", "adopted") or holds:
                in_place.add(ch.id)
            else:
                not_done.add(ch.id)
            settled.add(ch.id)
            emit(result, ch, step, msg)

    def skip(ch: Change, step: str, reason: str, state: str = J.SKIPPED, holds: bool = False) -> None:
        journal.update_change(session_id, ch.id, state=state, note=reason, event=reason,
                              set_flags={"in_place": True} if holds else None)
        outcome(ch, step, "skipped", reason, holds)

    def stood_in(change_id: str) -> str:
        """How the change a stand-in replaces went: 'in place', 'not applied', or '' (not in this
        apply and not applied before: the stand-in is the change to send)."""
        with lock:
            if change_id in in_place:
                return "in place"
            if change_id in not_done:
                return "not applied"
        return "in place" if change_id not in batch_ids and _applied_before(journal, session_id, change_id) else ""

    def admitted(ch: Change) -> bool:
        """The checks that need no ARM call (in the dispatching thread: `confirm` is interactive)."""
        step = step_of(ch.check)
        if step not in decided:
            journal.update_session(session_id, step=step)
            decided[step] = True if confirm is None else bool(confirm(step, by_step[step]))
        if not decided[step]:
            skip(ch, step, "declined at the confirmation")
        elif (ch.disruptive or ch.id in offline) and not allow_disruptive:
            why = ch.risk or ("the VM is deallocated for it" if ch.id in offline else "may interrupt service")
            skip(ch, step, "disruptive (" + why + "); pass --allow-disruptive")
        elif ch.billable and not allow_cost:
            skip(ch, step, "billable (creates a paid resource); pass --allow-cost")
        elif unset_params(ch):  # a choice no default could be made for (e.g. which Key Vault key): never send a guess
            unset = unset_params(ch)
            skip(ch, step, f"waiting for parameter {', '.join(unset)}; pass --param {ch.id}.{unset[0]}=VALUE")
        elif ch.instead_of and stood_in(ch.instead_of) == "in place":
            skip(ch, step, f"not needed: {ch.instead_of}, the broader change it stands in for, is in place and covers it")
        elif ch.instead_of and stood_in(ch.instead_of) == "not applied":
            # The broader change was meant to cover this resource and did not: sending the stand-in
            # now would make the end state depend on which of the two happened to fail.
            skip(ch, step, f"{BLOCKED_PREFIXES[0]} {ch.instead_of}, which was not applied and was to cover it; "
                           "re-run the apply")
        else:
            absent = [d for d in ch.depends_on if d not in batch_ids and not _applied_before(journal, session_id, d)]
            if absent:
                # A prerequisite from a step that was not selected: writing now would point at
                # something that does not exist yet (ARM refuses, or worse, accepts a dangling id).
                steps = sorted({step_of(d.rsplit("-", 1)[0]) for d in absent})
                skip(ch, step, f"{BLOCKED_PREFIXES[1]} {', '.join(absent)} first; include --step {' --step '.join(steps)}")
            elif ch.id in unmet:
                skip(ch, step, unmet[ch.id])
            else:
                return True
        return False

    def run(unit: _Unit, todo: list[Change]) -> None:
        guard = power.PowerGuard(gateway, journal, session_id, on_stage=lambda vm, msg: log.info("%s: %s", vm, msg))
        ch: Change | None = None
        try:
            for ch in todo:
                if stopping.is_set():
                    ch = None
                    break  # stop sending: what is left stays planned for resume
                step = step_of(ch.check)
                with lock:
                    blocked = [d for d in ch.depends_on if d in not_done]
                if blocked:
                    skip(ch, step, f"{BLOCKED_PREFIXES[0]} {', '.join(blocked)}, which was not applied")
                    continue
                emit("start", ch, step)  # the front end may cancel here: nothing of `ch` was sent
                vm = vm_for.get(ch.id)
                if guard.current is not None and (vm is None or vm.lower() != guard.current.lower()):
                    guard.release()
                if vm is not None and not _hold(guard, vm, journal, session_id, ch, step, outcome):
                    continue
                _apply_one(gateway, journal, session_id, ch, step, written, replan, outcome, skip)
            ch = None
            guard.release()
            unit.finished = True
        except (ZtwError, KeyboardInterrupt) as exc:
            # ARM is unreachable or stuck: what is in flight stays recorded, and a VM held
            # deallocated stays so (its guard is journaled); resume settles both.
            with lock:
                stops.append((exc, ch.id if ch else "", guard.current or ""))
            stopping.set()
        except BaseException as exc:  # the front end cancelled (raised from its start hook)
            guard.release_quietly()
            with lock:
                stops.append((exc, "", ""))
            stopping.set()

    waiting = deque(units)
    running: dict[Future[None], _Unit] = {}
    interrupted: BaseException | None = None
    headroom = _headroom_of(gateway)
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="apply")
    try:
        while waiting or running:
            soonest = 0.5
            if interrupted is None and not stopping.is_set():
                try:
                    soonest = _dispatch(waiting, running, pool, settled, lock, admitted, run, parallel,
                                        barrier=confirm is not None, decided=decided, headroom=headroom)
                except KeyboardInterrupt as exc:  # Ctrl-C at a confirmation or between dispatches
                    interrupted = exc
                    stopping.set()
                    continue
            elif not running:
                break
            if running:
                try:
                    done, _ = wait(list(running), timeout=soonest, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt as exc:  # stop dispatching; in-flight changes finish and are journaled
                    interrupted = exc
                    stopping.set()
                    continue
                for fut in done:
                    running.pop(fut)
            elif waiting and interrupted is None and not stopping.is_set():
                # Nothing runs and nothing is ready: a unit waits on a change outside this run's order.
                unit = waiting.popleft()
                running[pool.submit(run, unit, [c for c in unit.changes if admitted(c)])] = unit
    finally:
        pool.shutdown(wait=True)
        # Listed in plan order, as one change at a time would list them, whatever finished first.
        position = {c.id: i for i, c in enumerate(batch)}
        report.outcomes.sort(key=lambda o: position.get(o.change_id, len(position)))
    if interrupted is not None:
        stops.append((interrupted, "", ""))
    if stops:
        _stopped(journal, session_id, report, stops)
    journal.update_session(session_id, status=J.DONE)
    if verify:
        _verify(gateway, journal, session_id, report)
    return report


def unset_params(ch: Change) -> list[str]:
    """The parameters of `ch` no default could fill: until a person sets them it is not sent."""
    return [name for name, value in ch.params.items() if value in ("", None)]


def _dispatch(waiting: deque[_Unit], running: dict[Future[None], _Unit], pool: ThreadPoolExecutor,
              settled: set[str], lock: threading.RLock, admitted: Callable[[Change], bool],
              run: Callable[[_Unit, list[Change]], None], workers: int, *, barrier: bool,
              decided: dict[str, bool], headroom: Headroom) -> float:
    """Start every waiting unit whose prerequisites have their outcome, in plan order, while
    workers are free. A unit whose write budget has fewer tokens than units already running
    on it waits (the worker goes to another subscription); returns how soon one of
    those has a token (at most 0.5 s). With a confirmation, a unit of a step not yet asked
    about waits for the running ones (the person answers with the earlier steps done)."""
    soonest = 0.5
    spent: _Unit | None = None  # the first ready unit held back for its budget

    def start(unit: _Unit) -> None:
        waiting.remove(unit)
        todo = [c for c in unit.changes if admitted(c)]
        if todo:
            running[pool.submit(run, unit, todo)] = unit
        else:
            unit.finished = True

    for unit in list(waiting):
        if len(running) >= workers:
            return soonest
        with lock:
            ready = unit.after <= settled and (unit.behind is None or unit.behind.finished)
        if not ready:
            continue
        if barrier and running and any(step_of(c.check) not in decided for c in unit.changes):
            return soonest
        key, tokens, rate = headroom(unit.changes[0].resource_id)
        busy = sum(1 for u in running.values() if key is not None and u.budget == key)
        if busy > tokens:  # one unit beyond the tokens may wait in the pacer: the bucket stays fed
            soonest = min(soonest, max(0.01, (busy - tokens) / rate))
            spent = spent or unit
            continue
        unit.budget = key
        start(unit)
    if not running and spent is not None:
        # every ready unit's budget is spent: one waits in the gateway's pacer for its token
        spent.budget = headroom(spent.changes[0].resource_id)[0]
        start(spent)
    return soonest


def _stopped(journal: J.Journal, session_id: str, report: ApplyReport,
             stops: list[tuple[BaseException, str, str]]) -> None:
    """Raise for the first reason the run stopped, once every worker has finished."""
    exc, _, _ = stops[0]
    if not isinstance(exc, (ZtwError, KeyboardInterrupt)):
        raise exc  # a front end's own cancellation: it knows what it means
    why = exc.message if isinstance(exc, ZtwError) else "Interrupted."
    flight = [cid for _, cid, _ in stops if cid]
    down = [vm.rsplit("/", 1)[-1] for _, _, vm in stops if vm]
    for cid in flight or [""]:
        journal.log(session_id, "interrupted", why, cid or None)
    where = (f"{', '.join(flight)} may be in flight" if flight else "no change was in flight")
    vms = f", and {', '.join(down)} {'is' if len(down) == 1 else 'are'} deallocated until then" if down else ""
    # Ctrl-C is said in one sentence; ARM's own reason comes first as the sentence it is.
    lead = f"{why} Apply stopped with" if isinstance(exc, ZtwError) else "Interrupted: apply stopped with"
    raise ApplyInterrupted(
        f"{lead} {len(report.applied)} change(s) applied (listed above), {where}, the rest not attempted{vms}.",
        "Run `ztwizard resume` to reconcile it (and start again any VM it deallocated).", report) from exc


def _disk_owners(gateway: ArmGateway, changes: list[Change], parallel: int) -> dict[str, str]:
    """{change id: VM id} for changes to attached disks: they run in their VM's unit."""
    disks = [c for c in changes if rid.type_of(c.resource_id).lower() == power.DISK]
    if not disks:
        return {}
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        reads = list(pool.map(lambda c: _safe_read(gateway, c.resource_id), disks))
    return {c.id: str(r["managedBy"]) for c, r in zip(disks, reads, strict=True) if r and r.get("managedBy")}


def _power_prerequisites(gateway: ArmGateway, offline: list[Change]) -> tuple[dict[str, str], dict[str, str]]:
    """For changes that need a deallocated VM, read before anything is written: the VM each one
    needs deallocated ({change id: vm id}) and, for those whose prerequisites are missing, why
    ({change id: skip note})."""
    needs = power.Prerequisites(gateway)
    vm_for: dict[str, str] = {}
    unmet: dict[str, str] = {}
    for ch in offline:
        res = _safe_read(gateway, ch.resource_id)
        vm = power.vm_of(gateway, ch.resource_id, res)
        if vm is None or (res is not None and side(res, ch.before, ch.after) == "after"):
            continue  # no VM to deallocate, or nothing to change on it
        vm_for[ch.id] = vm
        missing = needs.missing(res if vm == ch.resource_id else None, ch.after)
        if missing:
            unmet[ch.id] = power.prerequisite_note(missing)
    return vm_for, unmet


def _hold(guard: power.PowerGuard, vm: str, journal: J.Journal, session_id: str, ch: Change, step: str,
          outcome: Callable[..., None]) -> bool:
    """Deallocate `vm` for `ch`; when ARM refuses, `ch` fails saying so (nothing else was sent)."""
    try:
        guard.hold(vm)
        return True
    except OperationTimedOut:
        raise
    except ArmError as exc:
        msg = f"could not deallocate {vm.rsplit('/', 1)[-1]} for it: {exc.message}"
        journal.update_change(session_id, ch.id, state=J.FAILED, error=exc.message, note=msg, event=msg)
        outcome(ch, step, "failed", msg)
        guard.release_quietly()
        return False


def _applied_before(journal: J.Journal, session_id: str, change_id: str) -> bool:
    """A prerequisite the same session already applied, adopted, or skipped because its resource
    already held it (a resumed session continues here; a saved plan's apply skips those before it
    starts)."""
    try:
        row = journal.change(session_id, change_id)
    except UsageError:
        return False
    # The notes: sessions journalled before the in_place flag existed said so only in words.
    return row.in_place or (row.state == J.SKIPPED and row.note in (_HOLDS, _IN_PLACE, ALREADY))


def _lost_answer(exc: ZtwError) -> bool:
    """An error that says nothing about whether the write landed: no answer from ARM, or a
    throttle or server error after the gateway's retries."""
    return not isinstance(exc, ArmError) or exc.status in (408, 429, 500, 502, 503, 504)


def _apply_one(gateway: ArmGateway, journal: J.Journal, session_id: str, ch: Change, step: str,
               written: dict[str, dict[str, Any] | None], replan: bool,
               outcome: Callable[..., None], skip: Callable[..., None]) -> None:
    try:
        cur = gateway.read_settled(ch.resource_id)
    except PermissionDenied as exc:
        journal.update_change(session_id, ch.id, state=J.FAILED, error=exc.message, event=exc.message)
        outcome(ch, step, "failed", exc.message)
        return
    mine = own_creation(journal, session_id, ch, cur)  # a create whose resource is the wizard's own
    if mine is not None and mine.complete:
        journal.update_change(session_id, ch.id, state=J.SKIPPED, note=mine.reason, event=mine.reason,
                              set_flags={"in_place": True})
        outcome(ch, step, "adopted", mine.reason)
        return
    reason = "" if mine is not None else _stale(ch, cur)
    if reason == _HOLDS and ch.resource_id.lower() in written:
        skip(ch, step, _IN_PLACE, holds=True)
        return
    if reason and replan and cur is not None and _moved_by_us(ch, cur, written.get(ch.resource_id.lower())):
        # Our own earlier write in this run moved the resource: plan this change afresh.
        fresh = _replan(gateway, ch)
        if fresh is None:
            skip(ch, step, _IN_PLACE, holds=True)
            return
        ch = fresh
        journal.update_change(session_id, ch.id, plan_before=ch.before, plan_after=ch.after, body=ch.body,
                              etag_before=ch.etag, event="re-planned after an earlier change to the same resource")
        reason = _stale(ch, cur)
    if reason:
        skip(ch, step, reason, holds=reason == _HOLDS)
        return
    body = _body(ch, cur)
    etag = (cur or {}).get("etag")
    journal.update_change(session_id, ch.id, state=J.IN_FLIGHT, before_image=cur, body=body,
                          etag_before=etag, error=None, note=None, event=f"{ch.method} sent")
    try:
        result = gateway.write(ch.method, ch.resource_id, body, etag=etag)
    except OperationTimedOut as exc:
        # The operation may still land or roll back: the row stays in flight, resume reads ARM.
        journal.update_change(session_id, ch.id, event=f"{exc.message} Outcome unknown; resume reconciles it.")
        raise
    except EtagMismatch as exc:
        now = gateway.read(ch.resource_id)
        if _landed(ch, now):  # a retried request whose first try had landed
            _applied(journal, session_id, ch, step, now, written, outcome, "")
            return
        msg = "changed by someone else since it was read (412); nothing was overwritten; re-run the plan"
        journal.update_change(session_id, ch.id, state=J.NOT_APPLIED, error=exc.message, note=msg,
                              after_image=now, event=msg)
        outcome(ch, step, "skipped", msg)
        return
    except ZtwError as exc:
        now = gateway.read(ch.resource_id)  # unreachable ARM propagates: resume settles it
        gone = ch.method == "DELETE" and isinstance(exc, NotFound)  # a retried DELETE whose first try landed
        if (gone or not isinstance(exc, (PermissionDenied, NotFound))) and _landed(ch, now):
            # The write reached ARM although its answer was lost (or ARM said otherwise).
            note = "" if _lost_answer(exc) else f"ARM reported an error but the resource holds the change: {exc.message}"
            _applied(journal, session_id, ch, step, now, written, outcome, note)
            return
        journal.update_change(session_id, ch.id, state=J.FAILED, error=exc.message, after_image=now,
                              event=exc.message)
        outcome(ch, step, "failed", exc.message)
        return
    after = result if ch.method != "DELETE" else None
    failed_parts = failed_extensions(after)
    if failed_parts:
        # A 201 whose extensions failed (a Defender plan): the tier may have landed, so the row is
        # applied (undo can take it back), but the change is a failure naming what failed.
        msg = "ARM applied it only in part: " + "; ".join(failed_parts)
        journal.update_change(session_id, ch.id, state=J.APPLIED, result_etag=(after or {}).get("etag"),
                              after_image=after, error=msg, note=msg, event=msg)
        written[ch.resource_id.lower()] = after
        outcome(ch, step, "failed", msg)
        return
    if ch.method != "DELETE" and (after is None or not _landed(ch, after)):
        after = _safe_read(gateway, ch.resource_id) or after
    note = ""
    if not _landed(ch, after):
        note = "ARM accepted the write but does not hold the values: " + ", ".join(
            map(dotted, mismatches(after, ch.after)) if ch.method != "DELETE" else ["the resource still exists"])
    _applied(journal, session_id, ch, step, after, written, outcome, note)


def failed_extensions(res: dict[str, Any] | None) -> list[str]:
    """'name failed (code): message' for each part of a write's answer whose operationStatus says
    Failed: pricing `extensions[]`, Defender for Storage's malware scanning and data discovery."""
    out: list[str] = []

    def walk(node: Any, name: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, name)
        elif isinstance(node, dict):
            status = node.get("operationStatus")
            if isinstance(status, dict) and str(status.get("code") or "").lower() == "failed":
                what = str(node.get("name") or name)
                out.append(f"extension {what} failed" + (f": {status['message']}" if status.get("message") else ""))
            for key, value in node.items():
                if key != "operationStatus":
                    walk(value, key)

    walk(get_path(res or {}, "properties"), "properties")
    return out


def _applied(journal: J.Journal, session_id: str, ch: Change, step: str, after: dict[str, Any] | None,
             written: dict[str, dict[str, Any] | None], outcome: Callable[..., None], note: str) -> None:
    journal.update_change(session_id, ch.id, state=J.APPLIED, result_etag=(after or {}).get("etag"),
                          after_image=after, note=note or None, event="applied")
    written[ch.resource_id.lower()] = after
    outcome(ch, step, "applied", note)


def _moved_by_us(ch: Change, cur: dict[str, Any], ours: dict[str, Any] | None) -> bool:
    """Whether what moved the resource off the plan is this run's own earlier write (`ours`, the
    resource as that write answered; None if none or a delete), so the change may be planned
    afresh: the resource's fingerprint, as a saved plan takes it, is still the one our write left.
    That is ARM's etag where the type has one; a type without (storage accounts, Defender and
    diagnostic settings) must still hold, on this change's paths, what our write left there: an
    edit by someone else in between is theirs, and the change is skipped."""
    return fingerprint(ch, cur) == fingerprint(ch, ours)


_HOLDS = "already holds the change (set since the plan)"
_IN_PLACE = "already in place after an earlier change in this session"


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
        return _HOLDS
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


def _replan(gateway: ArmGateway, ch: Change) -> Change | None:
    from . import resource_id as rid
    from .engine import inspect

    sub = rid.parse(ch.resource_id).subscription
    # From ARM itself: Resource Graph has not seen the write that moved the resource yet.
    plan = inspect(gateway, check_ids=[ch.check], subscriptions=[sub] if sub else None, use_graph=False)
    for c in plan.changes():
        if c.id == ch.id:
            return c
    return None


def _safe_read(gateway: ArmGateway, resource_id: str) -> dict[str, Any] | None:
    try:
        return gateway.read(resource_id)  # type: ignore[no-any-return]
    except ZtwError:
        return None


def _verify(gateway: ArmGateway, journal: J.Journal, session_id: str, report: ApplyReport) -> None:
    from .engine import inspect

    steps = sorted({o.step_id for o in report.outcomes if o.result == "applied"})
    if not steps:
        return
    info = journal.session(session_id)
    try:
        # Read from ARM, never Resource Graph: the index lags the writes just made.
        plan = inspect(gateway, step_ids=steps, subscriptions=info.subscriptions or None,
                       resource_groups=info.resource_groups or None, use_graph=False)
        report.verification = plan.steps
    except ZtwError as exc:
        report.verify_error = exc.message
