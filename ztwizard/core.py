"""The application core: one object that the command line and the wizard both drive.

`Core` holds the target's gateway, the scope, the current plan (with the inventory it was judged
on) and the journal, and offers what a front end does with them: list subscriptions, inspect
(progress events and each step's result as it is ready), edit a change's parameters, apply (an
event per change, cancellable between writes), undo, resume, sessions and the journal with drift.
Results and events are the typed dataclasses below. Headless: no Textual, no argparse; every
blocking call may run in a worker thread."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

from . import engine, scope, waivers
from . import journal as J
from .apply import DEFAULT_PARALLEL, Confirm, apply_changes, refuse_if_read_only, start_session
from .armjson import mismatches
from .engine import Plan
from .errors import UsageError, ZtwError
from .inventory import Inventory
from .model import Change, StepResult
from .outcomes import ApplyReport, Event, Outcome
from .ports import ArmGateway
from .resume import ResumeReport, pick_session, reconcile
from .undo import UndoReport, one_way_of, three_way, undo_changes

# What a change is at, as the front ends show it. "drift": an undo refused because someone changed
# the resource since; "drifted"/"not_applied": what resume found ARM holds; "adopted": a create
# whose resource this wizard had already made (adopt.py), so nothing was sent.
ChangeState = Literal["pending", "in_flight", "applied", "adopted", "failed", "skipped", "undone", "drift",
                      "not_applied", "drifted", "planned", "undo_in_flight", "undo_failed"]
ApplyKind = Literal["start", "applied", "adopted", "failed", "skipped"]
UndoKind = Literal["undone", "failed", "skipped", "refused"]


# ---- events --------------------------------------------------------------------------------------

DRIFT_READERS = 8  # the journal's drift reads in flight at once (each waits on the read budgets too)

@dataclass(frozen=True)
class ProgressEvent:
    """Inspection has done `done` of `total` phases (the inventory's, then one per step)."""

    done: int
    total: int
    label: str


@dataclass(frozen=True)
class StepEvent:
    """One step is judged; its result is final for this inspection."""

    result: StepResult


InspectEvent = ProgressEvent | StepEvent


@dataclass(frozen=True)
class ChangeEvent:
    """A change moved during apply (start, applied, adopted, failed, skipped) or undo (undone, failed,
    skipped, refused). `message` says why for failed, skipped and refused."""

    change_id: str
    kind: ApplyKind | UndoKind
    message: str = ""
    step_id: str = ""
    change: Change | None = None  # the change itself, during apply

    @property
    def state(self) -> ChangeState:
        if self.kind == "start":
            return "in_flight"
        if self.kind == "refused":
            return "drift"
        return self.kind


# ---- results -------------------------------------------------------------------------------------

class Subscription(NamedTuple):
    id: str
    name: str


@dataclass
class SessionInfo:
    """An unfinished session the journal offers to resume."""

    id: str
    step: str | None
    status: str
    started_at: str = ""
    changes: int = 0
    in_flight: int = 0


@dataclass
class ApplyOutcome:
    change_id: str
    ok: bool
    state: ChangeState
    message: str = ""


@dataclass
class DriftRow:
    path: str
    before: Any
    wrote: Any
    now: Any


@dataclass
class JournalRow:
    """One journalled change as the journal view lists it."""

    change_id: str
    step: str
    check: str
    resource_id: str
    action: str
    method: str
    state: str
    title: str = ""
    message: str = ""
    drift: list[DriftRow] = field(default_factory=list)
    seq: int = 0  # write order within the session (undo goes latest first)


@dataclass
class JournalView:
    """A session's journalled changes: the current session, else the newest one."""

    session_id: str | None
    status: str
    rows: list[JournalRow]


@dataclass
class ApplyResult:
    session_id: str
    outcomes: list[ApplyOutcome]
    interrupted: bool = False  # cancelled between two writes; the journal says what was done
    report: ApplyReport | None = field(default=None, repr=False)

    def of(self, state: ChangeState) -> list[ApplyOutcome]:
        return [o for o in self.outcomes if o.state == state]

    def lines(self) -> list[str]:
        return self.report.lines() if self.report else []


@dataclass
class UndoResult:
    outcomes: list[ApplyOutcome]
    drift: dict[str, list[DriftRow]] = field(default_factory=dict)  # change id -> three-way rows
    session_id: str = ""
    report: UndoReport | None = field(default=None, repr=False)
    interrupted: bool = False  # cancelled between two undos; the journal says what was done

    def of(self, state: ChangeState) -> list[ApplyOutcome]:
        return [o for o in self.outcomes if o.state == state]

    @property
    def ok(self) -> bool:
        unmet = self.report.unmet if self.report else []  # still in place: a prerequisite is missing
        return not self.of("failed") and not self.of("drift") and not unmet

    def lines(self) -> list[str]:
        return self.report.lines() if self.report else []


@dataclass
class ResumeResult:
    session_id: str
    step: str | None
    settled: list[ApplyOutcome]
    remaining: list[str]  # change ids planned but not yet applied
    report: ResumeReport | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        return self.report.lines() if self.report else []


class _Cancelled(Exception):
    """Raised from apply's start hook when the front end cancels: stop between writes."""


# ---- the core ------------------------------------------------------------------------------------

class Core:
    """One target, its scope, the current plan and the journal, for one front end."""

    def __init__(self, gateway: ArmGateway | Callable[[], ArmGateway], *, state_dir: Path | str | None,
                 dry_run: bool = False, allow_disruptive: bool = False, allow_cost: bool = False,
                 waivers_file: Path | str | None = None, waivers_required: bool = False) -> None:
        self._gateway_or_factory = gateway
        self._gateway: ArmGateway | None = None
        self.state_dir = Path(state_dir) if state_dir else None
        self.dry_run = dry_run
        self.allow_disruptive = allow_disruptive
        self.allow_cost = allow_cost
        # Accepted risks (waivers.py): default STATE_DIR/waivers.toml; `required` when named (--waivers).
        self.waivers_file = Path(waivers_file) if waivers_file else (
            waivers.default_path(self.state_dir) if self.state_dir else None)
        self.waivers_required = waivers_required
        self.subscriptions: list[str] | None = None  # None: the target's, else all the credential sees
        self.session_id: str | None = None  # the session this core applies in
        self._journal: J.Journal | None = None
        self._shown_session: str | None = None  # the session the last journal view listed
        self._plan: Plan | None = None
        self._inventory: Inventory | None = None
        self._selection: dict[str, list[str]] = {"steps": [], "checks": []}  # the last inspection's
        self._lock = threading.Lock()

    def __enter__(self) -> Core:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ---- target --------------------------------------------------------------------------
    @property
    def gateway(self) -> ArmGateway:
        """The gateway, built on first use when the core was given a factory (in a worker)."""
        if self._gateway is None:
            g = self._gateway_or_factory
            self._gateway = g() if callable(g) and not hasattr(g, "target") else g  # type: ignore[assignment]
        assert self._gateway is not None
        return self._gateway

    def target_label(self) -> str:
        g = self._gateway if self._gateway is not None else self._gateway_or_factory
        target = getattr(g, "target", None)
        if target is None:
            return "Azure"
        kind = getattr(target, "kind", "azure")
        endpoint = getattr(target, "label", "") or getattr(target, "endpoint", "") or ""
        return f"{kind} {endpoint}".strip()

    def endpoint(self) -> str:
        target = getattr(self.gateway, "target", None)
        ep = getattr(target, "endpoint", "") or "https://management.azure.com"
        return str(ep).rstrip("/")

    def list_subscriptions(self) -> list[Subscription]:
        """(id, display name) of every subscription the credential can see."""
        return [Subscription(sid, name) for sid, name in self.gateway.subscription_names()]

    def set_scope(self, subscriptions: Sequence[str] | None) -> None:
        """The subscriptions to inspect; None: the target's (or all the credential can see)."""
        engine.validate_subscriptions(subscriptions or [])
        self.subscriptions = list(subscriptions) if subscriptions is not None else None

    @property
    def resource_groups(self) -> list[str]:
        """The resource groups in scope (-g); empty: every group of the subscriptions in scope."""
        return list(getattr(self.gateway.target, "resource_groups", None) or [])

    def list_resource_groups(self, subscriptions: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(subscription id, group name) of every resource group in those subscriptions (the scope's)."""
        subs = list(subscriptions or self.subscriptions or self.gateway.target.subscriptions
                    or [s.id for s in self.list_subscriptions()])
        gateway: Any = self.gateway  # the scope check's lister (scope.py), not part of the Protocol
        found = [(sub, str(g.get("name", ""))) for sub in subs for g in gateway.list_resource_groups(sub)]
        return sorted(found, key=lambda x: (x[1].lower(), x[0]))

    def set_resource_groups(self, groups: Sequence[str]) -> None:
        """Scope the next inspection to these resource groups (as -g does); empty: all of them.
        A name no subscription in scope holds is refused when inspecting."""
        self.gateway.target.resource_groups = [g for g in groups if g]

    # ---- inspect and plan ----------------------------------------------------------------
    def inspect(self, step_ids: Sequence[str] | None = None, check_ids: Sequence[str] | None = None, *,
                on_event: Callable[[InspectEvent], None] | None = None) -> Plan:
        """Read the scope's inventory once and judge the selected steps (all by default), each
        result reported as soon as it is ready. Returns the plan of those steps; `plan` is the
        current plan with them merged in."""
        def progress(done: int, total: int, label: str) -> None:
            if on_event:
                on_event(ProgressEvent(done, total, label))

        def on_step(result: StepResult) -> None:
            waivers.waive_step(result, active)  # shown waived as soon as judged; changes drop below
            if on_event:
                on_event(StepEvent(result))

        self._selection = {"steps": list(step_ids or []), "checks": list(check_ids or [])}
        accepted = waivers.load(self.waivers_file, must_exist=self.waivers_required) if self.waivers_file else []
        today = waivers.today_utc()
        active = [w for w in accepted if not w.expired(today)]
        groups = list(getattr(self.gateway.target, "resource_groups", None) or [])
        scope.check_resource_groups(self.gateway, groups, self.subscriptions)  # before any inventory
        found = engine.survey(self.gateway, step_ids=step_ids or [], check_ids=check_ids or [],
                              subscriptions=self.subscriptions, progress=progress, on_step=on_step,
                              overrides=self._plan.overrides if self._plan is not None else None)
        scope.scope_plan(found.plan, groups)  # -g proposes no subscription-wide change
        waivers.apply_waivers(found.plan, accepted, today)
        with self._lock:
            self._inventory = found.inventory
            self._plan = found.plan if self._plan is None else _merged(self._plan, found.plan)
        return found.plan

    @property
    def plan(self) -> Plan | None:
        """Every step judged so far, with the latest result of each and any edited parameters."""
        return self._plan

    def edit_params(self, change_id: str, values: Mapping[str, str]) -> Plan:
        """The plan with `change_id` rebuilt from the edited parameters (text as typed; the
        parameter's type and rule decide). Refused values raise a UsageError naming the rule."""
        with self._lock:
            if self._plan is None or self._inventory is None:
                raise UsageError("There is no plan to edit yet.", "Inspect first.")
            self._plan = engine.edit_change(self._inventory, self._plan, change_id, dict(values))
            return self._plan

    def waive(self, check: str, resource_id: str, *, reason: str, expires: str | None = None,
              by: str = "") -> waivers.Waiver:
        """Accept the risk of one finding on purpose: a waiver in the waivers file (as `ztwizard
        waive CHECK --resource ID` writes it). A missing reason or a bad date is a UsageError."""
        if self.waivers_file is None:
            raise UsageError("No state directory: there is no waivers file to write.",
                             "Pass --state-dir DIR or --waivers FILE.")
        w = waivers.new_waiver(check, reason=reason, resource=resource_id, expires=expires or None, by=by)
        waivers.add(self.waivers_file, w)
        return w

    def export_report(self, path: str, fmt: str) -> Path:
        """Write the current plan as `fmt` (markdown, sarif, json) to the file `path`, with the
        report code the command line uses: checked, atomic, 0600 (a bad path is a UsageError)."""
        from .files import output_target, write_output
        from .report import render

        if fmt not in ("markdown", "sarif", "json"):
            raise UsageError(f"Report format {fmt!r} is not one of markdown, sarif, json.", "Choose one of those.")
        if self._plan is None:
            raise UsageError("There is no plan to export yet.", "Inspect first.")
        if not path.strip() or path.strip() == "-":
            raise UsageError("The report needs a file path.", "Type a path such as ~/ztwizard-report.md.")
        dest = output_target(path.strip(), "Report file")
        write_output(str(dest), render(self._plan, fmt), "Report file")
        return dest

    # ---- what goes together ----------------------------------------------------------------
    def requires(self, change_ids: Sequence[str]) -> list[Change]:
        """The changes of the current plan that `change_ids` need applied with them: what they depend
        on (transitively) and the companions their risk says to apply with ("apply with hub-3b")."""
        return self._closure(change_ids, lambda c, by_id, all_: [by_id[d] for d in c.depends_on if d in by_id]
                             + _companions(c, all_))

    def required_by(self, change_ids: Sequence[str]) -> list[Change]:
        """The changes of the current plan that cannot go without `change_ids` (their dependents,
        transitively, and companions): what leaves the selection when these do."""
        return self._closure(change_ids, lambda c, by_id, all_: [d for d in all_ if c.id in d.depends_on]
                             + _companions(c, all_))

    def _closure(self, change_ids: Sequence[str],
                 step: Callable[[Change, dict[str, Change], list[Change]], list[Change]]) -> list[Change]:
        every = self._plan.changes() if self._plan else []
        by_id = {c.id: c for c in every}
        seen: dict[str, Change] = {}
        todo = [by_id[i] for i in change_ids if i in by_id]
        while todo:
            c = todo.pop()
            for nxt in step(c, by_id, every):
                if nxt.id not in seen and nxt.id not in change_ids:
                    seen[nxt.id] = nxt
                    todo.append(nxt)
        return [c for c in every if c.id in seen]

    def change(self, change_id: str) -> Change | None:
        """A change of the current plan by id."""
        return next((c for c in (self._plan.changes() if self._plan else []) if c.id == change_id), None)

    def region_of(self, resource_id: str) -> str:
        """The region of a resource as the last inspection read it (or of its parent), else ''."""
        from . import resource_id as rid

        inv, current = self._inventory, resource_id
        for _ in range(4):  # a subnet's region is its VNet's
            res = inv.get(current) if inv is not None else None
            if res is not None and res.get("location"):
                return str(res["location"])
            try:
                current = rid.parse(current).parent or ""
            except Exception:  # noqa: BLE001 - not a resource id: no region
                return ""
            if not current:
                return ""
        return ""

    def live_drift(self, change_id: str) -> list[DriftRow]:
        """Re-read the resource of a journalled change now and compare it with what the wizard
        wrote: the three-way rows where they differ (empty when ARM still holds the change)."""
        def load(j: J.Journal) -> J.ChangeRecord:
            sid = self.session_id or self._shown_session
            if sid is None:
                raise UsageError("There is no session to read.", "Apply a change first.")
            return j.change(sid, change_id)

        rec: J.ChangeRecord = self._read(load)
        if rec.action != "update":
            return []
        now = self.gateway.read(rec.resource_id)
        if now is None or not mismatches(now, rec.plan_after):
            return []
        return [DriftRow(*r) for r in three_way(rec, now).rows]

    # ---- journal -------------------------------------------------------------------------
    def lock_journal(self) -> None:
        """Open the journal for writing now (one writer at a time: a second wizard stops here)."""
        self._writer()

    def _writer(self) -> J.Journal:
        """The journal opened for writing, held until the core closes."""
        if self.state_dir is None:
            raise ZtwError("No state directory: the journal cannot be written.",
                           "Pass --state-dir DIR or set ZTWIZARD_STATE_DIR.")
        if self._journal is None:
            self._journal = J.Journal(self.state_dir, write=True)
        return self._journal

    def _read(self, what: Callable[[J.Journal], Any]) -> Any:
        if self._journal is not None:
            return what(self._journal)
        if self.state_dir is None:
            raise ZtwError("No state directory: there is no journal to read.",
                           "Pass --state-dir DIR or set ZTWIZARD_STATE_DIR.")
        with J.Journal(self.state_dir, write=False) as j:
            return what(j)

    def sessions(self) -> list[J.SessionInfo]:
        """Every session in the journal, newest first."""
        result: list[J.SessionInfo] = self._read(lambda j: j.sessions())
        return result

    def session_changes(self, session_id: str) -> list[J.ChangeRecord]:
        result: list[J.ChangeRecord] = self._read(lambda j: j.changes(session_id))
        return result

    def pick_session(self, session_id: str | None = None) -> str:
        """The named session (checked), or the newest unfinished one."""
        result: str = self._read(lambda j: pick_session(j, session_id))
        return result

    def unfinished_session(self) -> SessionInfo | None:
        """The newest open session on this target, if any: the wizard offers to resume it."""
        if self.state_dir is None:
            return None
        try:
            here = (self.gateway.target.endpoint or "").rstrip("/")
        except Exception:  # noqa: BLE001 - no target, no filter
            here = ""
        info: J.SessionInfo | None = self._read(lambda j: j.open_session_on(here))
        if info is None:
            return None
        counts = info.counts
        return SessionInfo(id=info.id, step=info.step, status=info.status, started_at=info.created_at,
                           changes=sum(counts.values()),
                           in_flight=info.in_flight)

    def journal(self, session_id: str | None = None, *, drift: bool = True) -> JournalView:
        """A session's changes (by default the current one, else the newest), with drift where a
        resource no longer holds what the wizard wrote. Drift is one GET per applied update, read
        concurrently (and paced); `drift=False` reads only the journal."""
        if self.state_dir is None:
            return JournalView(None, "", [])

        def load(j: J.Journal) -> tuple[str, str, list[J.ChangeRecord]] | None:
            sid = session_id or self.session_id
            if sid is None:
                latest = j.latest_session()
                if latest is None:
                    return None
                sid = latest.id
            return sid, j.session(sid).status, j.changes(sid)

        found = self._read(load)
        if found is None:
            return JournalView(None, "", [])
        sid, status, records = found
        self._shown_session = sid
        compared = [rec for rec in records if drift and rec.state in J.UNDOABLE and rec.action == "update"]
        with ThreadPoolExecutor(max_workers=max(1, min(DRIFT_READERS, len(compared)))) as pool:
            now = dict(zip((rec.change_id for rec in compared),
                           pool.map(lambda rec: self.gateway.read(rec.resource_id), compared), strict=True))
        return JournalView(sid, status, [self._row(rec, now) for rec in records])

    def _row(self, rec: J.ChangeRecord, now: Mapping[str, dict[str, Any] | None] | None = None) -> JournalRow:
        """A journal row; with `now` (change id -> the resource read just now), its drift."""
        rows: list[DriftRow] = []
        if now is not None and rec.change_id in now and mismatches(now[rec.change_id], rec.plan_after):
            rows = [DriftRow(*r) for r in three_way(rec, now[rec.change_id]).rows]
        return JournalRow(change_id=rec.change_id, step=rec.step_id, check=rec.check_id,
                          resource_id=rec.resource_id, action=rec.action, method=rec.method,
                          state=rec.state, title=rec.title, message=rec.error or rec.note or "",
                          drift=rows, seq=rec.seq or 0)

    # ---- apply ---------------------------------------------------------------------------
    def apply(self, changes: Sequence[Change] | None = None, *, allow_disruptive: bool | None = None,
              allow_cost: bool | None = None, confirm: Confirm | None = None,
              on_event: Callable[[ChangeEvent], None] | None = None,
              cancelled: Callable[[], bool] | None = None, verify: bool = True,
              source: str = "cli", parallel: int = DEFAULT_PARALLEL) -> ApplyResult:
        """Apply `changes` (by default the whole current plan), journalled write-ahead, in the
        core's session (started on the first apply). Disruptive and billable changes are skipped
        unless allowed (the core's flags unless given); `confirm` is asked once per step;
        `cancelled` is polled before each write, so cancelling stops sending (the writes in flight
        finish and are journaled); up to `parallel` independent changes are written at once."""
        if self.dry_run:
            raise UsageError("--dry-run is set: apply refused; nothing was changed.",
                             "Restart without --dry-run (and --estate) to apply.")
        refuse_if_read_only(self.gateway, False, "apply")
        if changes is None:
            changes = self._plan.changes() if self._plan else []
        disruptive = self.allow_disruptive if allow_disruptive is None else allow_disruptive
        cost = self.allow_cost if allow_cost is None else allow_cost
        j = self._writer()
        target = self.gateway.target
        if self.session_id is None:
            self.session_id = start_session(
                j, self.gateway, changes, subscriptions=self.subscriptions or target.subscriptions,
                resource_groups=target.resource_groups,
                selection={**self._selection, "allow_disruptive": disruptive, "allow_cost": cost,
                           "source": source})
        else:
            j.hold(self.session_id)
            j.update_session(self.session_id, status=J.OPEN)
        sid = self.session_id
        outcomes: list[ApplyOutcome] = []

        def hook(ev: Event) -> None:
            if ev.kind == "start" and cancelled is not None and cancelled():
                raise _Cancelled()
            if ev.kind != "start":
                outcomes.append(ApplyOutcome(ev.change.id, ev.kind in ("applied", "adopted"), ev.kind, ev.message))  # type: ignore[arg-type]
            if on_event:
                on_event(ChangeEvent(ev.change.id, ev.kind, ev.message, ev.step_id, ev.change))  # type: ignore[arg-type]

        try:
            report = apply_changes(self.gateway, j, sid, list(changes), allow_disruptive=disruptive,
                                   allow_cost=cost, confirm=confirm, on_event=hook, verify=verify,
                                   parallel=parallel)
        except _Cancelled:
            j.log(sid, "interrupted", "the front end cancelled during apply")
            return ApplyResult(sid, outcomes, interrupted=True)
        return ApplyResult(sid, outcomes, report=report)

    # ---- undo ----------------------------------------------------------------------------
    def undoable(self, session_id: str | None = None, *, step_ids: Sequence[str] | None = None,
                 change_ids: Sequence[str] | None = None) -> tuple[str, list[JournalRow]]:
        """The session to undo in (named, else the newest with something to undo) and the
        changes an undo of it (or of those steps / changes) would take back, latest first."""
        engine.validate_selection(step_ids or [], [])
        j = self._writer()
        states = (*J.UNDOABLE, J.IN_FLIGHT, J.UNDO_IN_FLIGHT)
        sid = session_id
        if sid:
            j.session(sid)
        else:
            # An undone session may keep its one-way changes (ARM keeps them): nothing left to take back.
            candidates = [s for s in j.sessions()
                          if s.status != J.UNDONE_SESSION and any(s.counts.get(k) for k in states)]
            if not candidates:
                raise UsageError("No session in the journal has changes to undo.",
                                 hint="List sessions with `ztwizard sessions`.")
            sid = candidates[0].id
        records = j.changes(sid, states=states, step_ids=list(step_ids or []) or None,
                            change_ids=list(change_ids or []) or None)
        for cid in change_ids or []:
            j.change(sid, cid)  # an unknown id is a usage error
        refuse_if_read_only(self.gateway, self.dry_run, "undo")
        rows = [self._row(rec) for rec in records if not one_way_of(rec)]
        return sid, sorted(rows, key=lambda r: r.seq, reverse=True)

    def undo(self, change_ids: Sequence[str] | None = None, *, session_id: str | None = None,
             step_ids: Sequence[str] | None = None, override: bool = False,
             on_event: Callable[[ChangeEvent], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> UndoResult:
        """Undo those changes (or those steps'), or with neither the whole session (which then
        counts as undone). The session defaults to the current one, else the one last shown.
        A change someone altered since is refused with its three-way rows unless `override`."""
        if self.dry_run:
            raise UsageError("--dry-run is set: undo refused; nothing was changed.", "Restart without --dry-run.")
        sid = session_id or self.session_id or self._shown_session
        if sid is None:
            raise UsageError("There is no session to undo.", "Apply a change first.")
        j = self._writer()
        j.hold(sid)

        seen: list[Outcome] = []

        def hook(o: Outcome) -> None:
            seen.append(o)
            if on_event:
                on_event(ChangeEvent(o.change_id, o.result, o.message, o.step_id))  # type: ignore[arg-type]
            if cancelled is not None and cancelled():
                raise _Cancelled()  # after an undo is journalled, before the next one is sent

        try:
            report = undo_changes(self.gateway, j, sid, change_ids=list(change_ids) if change_ids is not None else None,
                                  step_ids=list(step_ids) if step_ids else None, override=override, on_event=hook)
        except _Cancelled:
            j.log(sid, "interrupted", "the front end cancelled during undo")
            return UndoResult([ApplyOutcome(o.change_id, o.result == "undone",
                                            "drift" if o.result == "refused" else o.result, o.message)  # type: ignore[arg-type]
                               for o in seen], {}, sid, None, interrupted=True)
        outcomes = [ApplyOutcome(o.change_id, o.result == "undone",
                                 "drift" if o.result == "refused" else o.result, o.message)  # type: ignore[arg-type]
                    for o in report.outcomes]
        drift = {d.change_id: [DriftRow(*r) for r in d.rows] for d in report.drifts}
        return UndoResult(outcomes, drift, sid, report)

    # ---- resume --------------------------------------------------------------------------
    def resume(self, session_id: str | None = None) -> ResumeResult:
        """Settle the session's in-flight changes by reading ARM, say where it stopped, and
        continue in it (this core's later applies join that session)."""
        j = self._writer()
        sid = pick_session(j, session_id)
        report = reconcile(self.gateway, j, sid)
        info = j.session(sid)
        self.session_id = sid
        if info.subscriptions and self.subscriptions is None:
            self.subscriptions = list(info.subscriptions)
        settled = [ApplyOutcome(s.change_id, s.now == "applied", s.now, s.message)  # type: ignore[arg-type]
                   for s in report.settled]
        return ResumeResult(sid, report.next_step or info.step, settled, list(report.remaining), report)

    def continue_session(self, session_id: str | None = None) -> tuple[ResumeReport, ApplyReport | None]:
        """Settle the session, then apply what it had not yet applied, without the wizard: a
        fresh plan of its remaining steps (never a stale body), with the session's allow flags."""
        from .resume import continue_session

        j = self._writer()
        sid = pick_session(j, session_id)
        self.session_id = sid
        return continue_session(self.gateway, j, sid)

    def close(self) -> None:
        """Release the journal's writer lock and the gateway's connections."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._gateway is not None:
            self._gateway.close()


_APPLY_WITH = re.compile(r"apply\s+(?:it\s+)?with\s+([a-z]+-\d+[a-z])\b", re.IGNORECASE)


def _companions(c: Change, every: list[Change]) -> list[Change]:
    """The changes that say to be applied with `c` and that `c` says to be applied with: both risks
    carry "apply with <check>", one naming the other's check (hub-3a's association and hub-3b's)."""
    def named(x: Change) -> set[str]:
        return {m.lower() for m in _APPLY_WITH.findall(x.risk or "")}

    mine = named(c)
    if not mine:
        return []
    return [o for o in every if o.id != c.id and named(o) and (o.check in mine or c.check in named(o))]


def _merged(old: Plan, fresh: Plan) -> Plan:
    """`old` with the steps `fresh` judged again replaced, in catalog order."""
    by_id = {s.id: s for s in old.steps}
    by_id.update({s.id: s for s in fresh.steps})
    order = [step.id for step, _ in engine.selected_steps()]
    return Plan(target=fresh.target, steps=[by_id[i] for i in order if i in by_id],
                overrides={**old.overrides, **fresh.overrides}, notes=fresh.notes)


