"""The wizard: a Textual app over the application core (`ztwizard.core.Core`), which the CLI
builds and hands over through `ztwizard.tui.make_app`.

The app owns the wizard's screen state (results per step, the selection of changes, change progress,
the journal rows) and every blocking call: each runs in a thread worker that posts a typed
message back, so no screen ever waits on ARM."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.geometry import Size
from textual.worker import get_current_worker

from .. import journal as J
from ..core import (
    ApplyOutcome,
    ChangeEvent,
    Core,
    InspectEvent,
    JournalRow,
    ProgressEvent,
    SessionInfo,
    StepEvent,
    Subscription,
)
from ..errors import ZtwError
from ..model import Change, Finding, StepResult
from ..outcomes import BLOCKED_PREFIXES
from ..steps import STEP_BY_ID, STEPS, step_of
from .commands import WizardCommands
from .messages import (
    ApplyFinished,
    ChangeProgress,
    DriftRead,
    InspectProgress,
    JournalLoaded,
    Resumed,
    StepsInspected,
    SubscriptionsLoaded,
    UndoFinished,
)
from .render import SYM, ascii_locale, use_ascii

# What the step's re-inspection says after an apply, as the end of the summary sentence.
AFTER_APPLY = {"pass": "the step now passes", "fail": "the step still fails",
               "manual": "the step now needs a manual check", "error": "the step could not be read again",
               "not_applicable": "the step no longer applies"}

DRY_RUN_REASON = "dry-run: the wizard was started with --dry-run, so nothing is written to Azure"


def _why(exc: BaseException) -> str:
    if isinstance(exc, ZtwError):
        return f"{exc.message} {exc.hint}".strip()
    return f"{type(exc).__name__}: {exc}"


class WizardApp(App[int]):
    """ztwizard's interactive wizard."""

    CSS_PATH = "app.tcss"
    TITLE = "ztwizard"
    COMMANDS = App.COMMANDS | {WizardCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        # ctrl+c does what the footer's q does (Textual would only say "press ctrl+q")
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, core: Core, *, resume_session: str | None = None, ascii_only: bool | None = None) -> None:
        super().__init__()
        self.ascii_only = ascii_locale() if ascii_only is None else ascii_only
        use_ascii(self.ascii_only)
        self.core = core
        self.dry_run = core.dry_run
        self.resume_session = resume_session
        self.results: dict[str, StepResult] = {}
        self.inspecting = False
        self.inspect_progress: tuple[int, int, str] = (0, 0, "")
        self.inspect_error = ""
        self.start_error = ""  # shown on the start screen: nothing could be listed or inspected
        self.selected: dict[str, set[str]] = {}
        self.change_state: dict[str, tuple[str, str]] = {}  # change id -> (state, message)
        self.applying: str | None = None  # step id being applied
        self.apply_error: dict[str, str] = {}
        self.journal_rows: list[JournalRow] = []
        self.journal_session: str | None = None  # the session the journal view lists
        self.journal_status = ""
        self.session: SessionInfo | None = None
        self.subscriptions: list[Subscription] = []
        self.pending_step: str | None = None  # step to open once inspection ends (resume)
        self.resumed_remaining: set[str] = set()  # change ids a resumed session had yet to apply
        self._cancel_apply = threading.Event()
        self._quit_after_apply = False
        self._progress_queued = False  # a screen refresh for progress events is already queued
        self._journal_moved = False
        self.plan_notes: list[dict[str, Any]] = []  # what the last whole inspection said of its scope
        self._journal_following = False  # a load that follows a run is under way
        self._journal_behind = False  # the journal moved again while it was
        self._asking_quit = False
        self.farewell = ""  # what quitting mid-apply printed: what was done, how to resume
        self.resumed: str | None = None  # the session a resume reconciled (the journal sums it up)
        self._land_on_journal = False
        self.edited: dict[str, dict[str, object]] = {}  # change id -> parameters a person set
        self.undoing = False
        self.sub_title = core.target_label() + (f"  {SYM['dot']}  DRY-RUN" if self.dry_run else "")

    # ---- lifecycle ------------------------------------------------------------------------
    def on_mount(self) -> None:
        from .screens.start import StartScreen

        self.push_screen(StartScreen())
        self.load_start()
        self.call_after_refresh(self.fit_screen)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_screen(event.size)

    def fit_screen(self, size: Size | None = None) -> None:
        """Below 80x24 one plain screen asks for room instead of overlapping footers and dialogs."""
        from .screens.too_small import TooSmallScreen, too_small

        size = size or self.size
        small = too_small(size.width, size.height)
        cover = self.screen if isinstance(self.screen, TooSmallScreen) else None
        if small and cover is None:
            self.push_screen(TooSmallScreen())
        elif small and cover is not None:
            cover.show_size(size.width, size.height)
        elif cover is not None:
            self.pop_screen()

    def state_changed(self) -> None:
        """Let every screen on the stack re-read the app's state."""
        if len(self.screen_stack) > 1:
            self.fit_screen()  # a switch_screen may have replaced the cover
        for screen in self.screen_stack:
            hook = getattr(screen, "refresh_state", None)
            if callable(hook):
                hook()

    def on_unmount(self) -> None:
        self.core.close()

    # ---- actions --------------------------------------------------------------------------
    async def action_quit(self) -> None:
        """Quit; during an apply or undo, ask first, then stop after the change in flight so the
        journal stays exact, and say what was done and how to resume."""
        if not (self.applying or self.undoing):
            self.exit(0)
            return
        if self._asking_quit or self._quit_after_apply:
            return
        from .screens.confirm import ConfirmScreen

        what = "an undo" if self.undoing else "an apply"
        body = Text(f"{what.capitalize()} is running. Quitting lets the change ARM is writing now finish "
                    "(so the journal stays exact) and sends nothing after it.\n\nThe session stays open: "
                    "restart the wizard and press r to resume it.")

        def decided(ok: bool | None) -> None:
            self._asking_quit = False
            if ok and (self.applying or self.undoing):
                self._cancel_apply.set()
                self._quit_after_apply = True
                self.notify(f"Finishing the change in flight, then quitting{SYM['ellipsis']}")
            elif ok:
                self.exit(0)

        self._asking_quit = True
        self.push_screen(ConfirmScreen(f"Stop {what} and quit?", body), decided)

    def quit_with_summary(self, outcomes: list[ApplyOutcome], verb: str) -> None:
        """Leave after an interrupted apply or undo, printing what was done and how to go on."""
        sid = self.core.session_id or self.journal_session or ""
        by: dict[str, int] = {}
        for o in outcomes:
            by[o.state] = by.get(o.state, 0) + 1
        done = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(by.items())) or "nothing"
        where = f" --state-dir {self.core.state_dir}" if self.core.state_dir else ""
        self.farewell = (f"Stopped the {verb} after the change in flight: {done}; nothing after it was sent.\n"
                         f"Session {sid} stays open. Resume it with `ztwizard{where} resume {sid}` "
                         "(with this run's target flags), or restart the wizard and press r.")
        self.exit(0, message=self.farewell)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_open_step(self, step_id: str) -> None:
        from textual.screen import ModalScreen

        from .screens.journal import JournalScreen
        from .screens.start import StartScreen
        from .screens.step import StepScreen

        if step_id not in STEP_BY_ID:
            self.notify(f"No step {step_id!r}.", severity="error")
            return
        if isinstance(self.screen, StartScreen):
            self.notify("Choose the scope and inspect first (ctrl+s).", severity="warning")
            return
        # keep the stack shallow: checklist, then one step view
        while isinstance(self.screen, ModalScreen | JournalScreen) and len(self.screen_stack) > 2:
            self.pop_screen()
        if isinstance(self.screen, StepScreen):
            self.screen.show_step(step_id)
        else:
            self.push_screen(StepScreen(step_id))

    def action_journal(self) -> None:
        from .screens.journal import JournalScreen

        if not isinstance(self.screen, JournalScreen):
            self.push_screen(JournalScreen())  # its screen-resume reads the journal (once)
        else:
            self.load_journal()

    def action_export(self) -> None:
        from .screens.export import ExportScreen

        if self.core.plan is None:
            self.notify("Inspect first: there is no plan to export yet.", severity="warning")
            return

        def submit(path: str, fmt: str) -> str:
            try:
                dest = self.core.export_report(path, fmt)
            except ZtwError as exc:
                return _why(exc)
            self.notify(f"Report written to {dest}.")
            return ""

        self.push_screen(ExportScreen(submit))

    def screenshot_dir(self) -> Path:
        """~/Downloads when it exists, else the state directory (else the working directory)."""
        downloads = Path("~/Downloads").expanduser()
        if downloads.is_dir():
            return downloads
        return self.core.state_dir if self.core.state_dir is not None else Path.cwd()

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        where = Path(path) if path else self.screenshot_dir()
        try:
            where.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(where))
        except OSError as exc:
            self.notify(f"The screenshot could not be saved in {where}: {exc.strerror or exc}.",
                        severity="error")
            return
        self.notify(f"Screenshot saved to {saved}.")

    def action_reinspect(self) -> None:
        self.run_inspect()

    def action_checklist(self) -> None:
        from .screens.checklist import ChecklistScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, ChecklistScreen):
            self.pop_screen()
        if not isinstance(self.screen, ChecklistScreen):
            self.switch_screen(ChecklistScreen())

    def action_scope(self) -> None:
        """Back to the scope screen, with the subscriptions that were inspected still chosen."""
        from .screens.start import StartScreen

        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(StartScreen())

    def start_inspection(self, subscriptions: list[str] | None) -> None:
        """Leave the start screen for the checklist and inspect the chosen scope."""
        from .screens.checklist import ChecklistScreen

        self.core.set_scope(subscriptions)
        self.switch_screen(ChecklistScreen())
        self.run_inspect()

    def accept_resume(self, session_id: str | None = None) -> None:
        """Reconcile the session (the offered one unless named) and land where it stopped."""
        from .screens.checklist import ChecklistScreen

        sid = session_id or (self.session.id if self.session else None)
        if sid is None:
            return
        self.switch_screen(ChecklistScreen())
        self.run_resume(sid)

    # ---- selection ------------------------------------------------------------------------
    def selection(self, step_id: str) -> set[str]:
        """Changes chosen for apply; by default every change that is neither disruptive nor billable
        and needs nothing that is (it would only be skipped)."""
        if step_id not in self.selected:
            res = self.results.get(step_id)
            easy = {c.id for c in (res.changes if res else []) if not c.disruptive and not c.billable}
            self.selected[step_id] = {i for i in easy if all(r.id in easy for r in self.core.requires([i]))}
        return self.selected[step_id]

    def step_of_change(self, change_id: str) -> str:
        for sid, res in self.results.items():
            if any(c.id == change_id for c in res.changes):
                return sid
        return step_of(change_id.rsplit("-", 1)[0])

    def toggle_change(self, step_id: str, change_id: str) -> str:
        """Select or deselect one change; what it needs comes with it, what needs it goes with it.
        Returns a sentence naming the other changes that followed (empty when none did)."""
        chosen = self.selection(step_id)
        if change_id in chosen:
            chosen.discard(change_id)
            followed = [c for c in self.core.required_by([change_id])
                        if c.id in self.selection(self.step_of_change(c.id))]
            for c in followed:
                self.selection(self.step_of_change(c.id)).discard(c.id)
            verb = "Also deselected (they cannot go without it)"
        else:
            chosen.add(change_id)
            followed = [c for c in self.core.requires([change_id])
                        if c.id not in self.selection(self.step_of_change(c.id))]
            for c in followed:
                self.selection(self.step_of_change(c.id)).add(c.id)
            verb = "Also selected (it needs them)"
        if not followed:
            return ""
        return f"{verb}: " + "; ".join(self.describe_change(c) for c in followed) + "."

    def describe_change(self, change: Change) -> str:
        """`hub-2 Protect the hub with DDoS: Create DDoS plan ddos-hub`: the step and title, in words."""
        step = self.step_of_change(change.id)
        title = STEP_BY_ID[step].title if step in STEP_BY_ID else ""
        return f"{step} {title}: {change.title or change.check}".strip()

    def skip_reason(self, change_id: str, message: str) -> str:
        """A skip in words: a change waiting for another names that change's step and title, never
        its internal id or a command-line flag."""
        if message.startswith("still needed by "):  # an undo that other applied changes rest on
            ids = message[len("still needed by "):].split(";", 1)[0].split(", ")
            rows = {r.change_id: r for r in self.journal_rows}
            named = [f"{rows[i].step} {rows[i].title or rows[i].check}" if i in rows else "another change"
                     for i in ids]
            return "still needed by " + "; ".join(named) + ": undo that first."
        change = self.core.change(change_id)
        needs = [*change.depends_on, *([change.instead_of] if change.instead_of else [])] if change else []
        if change is None or not message.startswith(BLOCKED_PREFIXES) or not needs:
            return message
        waits = [self.core.change(d) for d in needs]
        named = [self.describe_change(c) for c in waits if c is not None
                 and self.change_state.get(c.id, ("", ""))[0] not in ("applied", "adopted")]
        if not named:
            return "waits for a change that was not applied."
        return "waits for " + "; ".join(named) + ", which was not applied. Select it too (space) and apply again."

    def edit_params(self, step_id: str, change_id: str, values: dict[str, str]) -> str:
        """Rebuild a change from edited parameters (the core re-plans it). Returns "" when done,
        else the core's one sentence and hint saying which rule a value breaks (nothing changed)."""
        if step_id not in self.results:
            return "Inspect first."
        try:
            plan = self.core.edit_params(change_id, values)
        except ZtwError as exc:
            return _why(exc)
        for s in plan.steps:  # the change and those that build on it (an association naming it)
            if s.id in self.results:
                self.results[s.id] = s
        change = next((c for c in self.results[step_id].changes if c.id == change_id), None)
        if change is not None:
            self.edited[change_id] = dict(change.params)
            self.notify(f"Parameters of {change.title or change.check} updated.")
        self.state_changed()
        return ""

    def waive(self, step_id: str, finding: Finding, reason: str, expires: str, by: str) -> str:
        """Write a waiver for one finding and judge its step again (it shows waived, its change
        leaves the plan). Returns "" when written, else the sentence and hint saying why not."""
        try:
            w = self.core.waive(finding.check, finding.resource_id, reason=reason, expires=expires, by=by)
        except ZtwError as exc:
            return _why(exc)
        self.notify(f"Waived {finding.check} on {finding.resource_id.rsplit('/', 1)[-1]} ({w.id}): {reason}")
        self.run_inspect([step_id])
        return ""

    def check_edits(self) -> None:
        """After a re-inspection: each edit is still in its change, or the person is told it was dropped."""
        for cid, params in list(self.edited.items()):
            change = self.core.change(cid)
            if change is not None and all(change.params.get(k) == v for k, v in params.items()):
                continue
            del self.edited[cid]
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            why = ("the check no longer proposes that change" if change is None
                   else "the check now proposes other values")
            self.notify(f"Your edit ({shown}) was dropped: {why}.", title="Edit dropped",
                        severity="warning", timeout=10)

    def chosen_changes(self, step_id: str) -> list[Change]:
        """The step's chosen changes, with those of other steps they need that are chosen too."""
        res = self.results.get(step_id)
        chosen = self.selection(step_id)
        mine = [c for c in (res.changes if res else []) if c.id in chosen]
        ids = {c.id for c in mine}
        extra = [c for c in self.core.requires(list(ids)) if c.id not in ids
                 and c.id in self.selection(self.step_of_change(c.id))]
        return extra + mine

    # ---- workers --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="start")
    def load_start(self) -> None:
        subs: list[Subscription] = []
        session = None
        error = ""
        try:
            subs = self.core.list_subscriptions()
        except Exception as exc:  # noqa: BLE001 - shown on the start screen, never a traceback
            error = _why(exc)
        try:
            session = self.core.unfinished_session()
        except Exception as exc:  # noqa: BLE001
            error = error or _why(exc)
        self.post_message(SubscriptionsLoaded(subs, session, error))

    @work(thread=True, exclusive=True, group="inspect")
    def run_inspect(self, step_ids: list[str] | None = None) -> None:
        self.post_message(InspectProgress(0, len(step_ids or STEPS), "reading the estate"))

        def on_event(ev: InspectEvent) -> None:
            if isinstance(ev, ProgressEvent):
                self.post_message(InspectProgress(ev.done, ev.total, ev.label))
            elif isinstance(ev, StepEvent):
                self.post_message(StepsInspected([ev.result], final=False))

        try:
            plan = self.core.inspect(step_ids, on_event=on_event)
        except Exception as exc:  # noqa: BLE001
            self.post_message(StepsInspected([], error=_why(exc)))
            return
        self.post_message(StepsInspected(plan.steps, notes=[dict(n) for n in plan.notes]))

    @work(thread=True, exclusive=True, group="apply")
    def run_apply(self, step_id: str, changes: list[Change]) -> None:
        worker = get_current_worker()
        self._cancel_apply.clear()

        def on_event(ev: ChangeEvent) -> None:
            self.post_message(ChangeProgress(ev.change_id, ev.state, ev.message))

        def cancelled() -> bool:
            return worker.is_cancelled or self._cancel_apply.is_set()

        outcomes: list[ApplyOutcome] = []
        error = ""
        try:
            # the person confirmed each change (typing the step id for disruptive or billable ones)
            result = self.core.apply(changes, allow_disruptive=True, allow_cost=True, on_event=on_event,
                                     cancelled=cancelled, verify=False, source="tui")
            outcomes = result.outcomes
        except Exception as exc:  # noqa: BLE001
            error = _why(exc)
        interrupted = cancelled()
        if not interrupted:
            try:
                plan = self.core.inspect(sorted({step_id, *(self.step_of_change(c.id) for c in changes)}))
                self.post_message(StepsInspected(plan.steps))
            except Exception as exc:  # noqa: BLE001
                error = error or _why(exc)
        self.post_message(ApplyFinished(step_id, outcomes, error, interrupted))

    @work(thread=True, exclusive=True, group="journal")
    def load_journal(self, drift: bool = True) -> None:
        try:
            view = self.core.journal(drift=drift)
        except Exception as exc:  # noqa: BLE001
            self.post_message(JournalLoaded(None, _why(exc)))
            return
        self.post_message(JournalLoaded(view, drift_read=drift))

    @work(thread=True, exclusive=True, group="drift")
    def read_drift(self, change_id: str) -> None:
        try:
            rows = self.core.live_drift(change_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(DriftRead(change_id, [], _why(exc)))
            return
        self.post_message(DriftRead(change_id, rows))

    def on_drift_read(self, msg: DriftRead) -> None:
        from .screens.journal import JournalScreen

        if msg.error:
            self.notify(msg.error, title="Drift", severity="error")
        elif isinstance(self.screen, JournalScreen):
            self.screen.show_drift(msg.change_id, msg.rows)

    def start_undo(self, change_ids: list[str], override: bool = False, whole: bool = False) -> None:
        self._cancel_apply.clear()
        self.undoing = True
        self.refresh_bindings()
        self.run_undo(change_ids, override, whole)

    @work(thread=True, exclusive=True, group="apply")
    def run_undo(self, change_ids: list[str], override: bool = False, whole: bool = False) -> None:
        def on_event(ev: ChangeEvent) -> None:
            self.post_message(ChangeProgress(ev.change_id, ev.state, ev.message))

        try:
            result = self.core.undo(None if whole else change_ids, override=override, on_event=on_event,
                                    cancelled=self._cancel_apply.is_set)
        except Exception as exc:  # noqa: BLE001
            self.post_message(UndoFinished(None, change_ids, _why(exc)))
            return
        if result.interrupted:
            self.post_message(UndoFinished(result, change_ids))
            return
        steps = sorted({r.step for r in self.journal_rows if r.change_id in change_ids and r.step})
        try:
            if steps:
                self.post_message(StepsInspected(self.core.inspect(steps).steps))
            self.post_message(JournalLoaded(self.core.journal()))
        except Exception as exc:  # noqa: BLE001
            self.post_message(UndoFinished(result, change_ids, _why(exc)))
            return
        self.post_message(UndoFinished(result, change_ids))

    @work(thread=True, exclusive=True, group="apply")
    def run_resume(self, session_id: str) -> None:
        try:
            result = self.core.resume(session_id)
        except Exception as exc:  # noqa: BLE001
            self.post_message(Resumed(session_id, None, _why(exc)))
            return
        self.post_message(Resumed(session_id, result))

    # ---- message handlers -----------------------------------------------------------------
    def on_subscriptions_loaded(self, msg: SubscriptionsLoaded) -> None:
        self.subscriptions = msg.subscriptions
        self.sub_title = self.core.target_label() + (f"  {SYM['dot']}  DRY-RUN" if self.dry_run else "")
        self.session = msg.session
        self.start_error = msg.error  # on the start screen itself, not a toast
        self.state_changed()
        if self.resume_session:
            sid, self.resume_session = self.resume_session, None
            self.accept_resume(sid)

    def on_inspect_progress(self, msg: InspectProgress) -> None:
        self.inspecting = True
        self.inspect_progress = (msg.done, msg.total, msg.label)
        self.state_changed()

    def on_steps_inspected(self, msg: StepsInspected) -> None:
        for r in msg.results:
            self.results[r.id] = r
            if self.resumed_remaining and r.id not in self.selected:
                pending = {c.id for c in r.changes} & self.resumed_remaining
                if pending:
                    self.selected[r.id] = pending
            # keep a person's choices, drop ids that no longer exist
            if r.id in self.selected:
                ids = {c.id for c in r.changes}
                self.selected[r.id] &= ids
        if msg.final and self.applying is None:
            self.inspecting = False
        if msg.final and self.edited:
            self.check_edits()
        self.inspect_error = msg.error
        if msg.notes is not None:
            self.plan_notes = msg.notes
            if self.plan_notes:  # said once, and kept on the checklist's scope line
                self.notify("\n".join(str(n.get("message") or n.get("kind")) for n in self.plan_notes),
                            title="Scope", severity="warning", timeout=10)
        if msg.error and msg.final and not self.results:  # nothing inspected: back to the start screen
            from .screens.start import StartScreen

            self.start_error, self.inspecting = msg.error, False
            self.switch_screen(StartScreen())
        elif msg.error:
            self.notify(msg.error, title="Inspection failed", severity="error", timeout=10)
        self.state_changed()
        if msg.final and self.pending_step and not self.inspecting:
            step, self.pending_step = self.pending_step, None
            self.action_open_step(step)
        if msg.final and self._land_on_journal and not self.inspecting:
            self._land_on_journal = False  # a resume lands on its session's journal (over its step)
            self.action_journal()

    def on_change_progress(self, msg: ChangeProgress) -> None:
        message = self.skip_reason(msg.change_id, msg.message) if msg.state == "skipped" else msg.message
        self.change_state[msg.change_id] = (msg.state, message)
        self._journal_moved |= msg.state not in ("in_flight", "pending")
        if not self._progress_queued:
            # one refresh for every event already queued behind this one: eight workers send
            # events faster than the screens redraw a step of hundreds of changes
            self._progress_queued = True
            self.call_later(self._show_progress)

    def _show_progress(self) -> None:
        self._progress_queued = False
        self.state_changed()
        if self._journal_moved:
            self._journal_moved = False
            self.refresh_journal()  # the journal view follows a running session

    def on_apply_finished(self, msg: ApplyFinished) -> None:
        self.applying = None
        self.refresh_bindings()
        if self._quit_after_apply:
            self.quit_with_summary(msg.outcomes, "apply")
            return
        self.inspecting = False
        for o in msg.outcomes:
            self.change_state[o.change_id] = (o.state, self.skip_reason(o.change_id, o.message)
                                              if o.state == "skipped" else o.message)
        applied = [o for o in msg.outcomes if o.state == "applied"]
        failed = [o for o in msg.outcomes if o.state == "failed"]
        skipped = [o for o in msg.outcomes if o.state == "skipped"]
        adopted = [o for o in msg.outcomes if o.state == "adopted"]
        status = self.results.get(msg.step_id)
        summary = (f"{len(applied)} applied, {len(failed)} failed, {len(skipped)} skipped"
                   f"{f', {len(adopted)} adopted' if adopted else ''}; "
                   f"{AFTER_APPLY.get(status.status if status else '', 'the step was not inspected again')}")
        if msg.error:
            self.apply_error[msg.step_id] = msg.error
            self.notify(msg.error, title="Apply failed", severity="error", timeout=10)
        elif failed or skipped:
            self.apply_error[msg.step_id] = summary + ". Each change below says why."
            self.notify(f"{msg.step_id}: {summary}.", severity="error" if failed else "warning")
        else:
            self.apply_error.pop(msg.step_id, None)
            self.notify(f"{msg.step_id}: {summary}.")
        self.selected.pop(msg.step_id, None)
        self.state_changed()

    def on_journal_loaded(self, msg: JournalLoaded) -> None:
        self._journal_following = False  # any load that lands (one an exclusive newer load replaced never does)
        if self._journal_behind:
            self._journal_behind = False
            self.call_later(self.refresh_journal)
        if msg.view is not None:
            if not msg.drift_read:  # what the last reading found still stands for rows still applied
                known = {r.change_id: r.drift for r in self.journal_rows}
                for row in msg.view.rows:
                    if row.state in J.UNDOABLE:
                        row.drift = known.get(row.change_id, [])
            self.journal_rows = msg.view.rows
            self.journal_session, self.journal_status = msg.view.session_id, msg.view.status
        else:
            self.journal_rows = []
        if msg.error:
            self.notify(msg.error, title="Journal", severity="error")
        self.state_changed()

    def on_undo_finished(self, msg: UndoFinished) -> None:
        self.undoing = False
        if self._quit_after_apply:
            self.quit_with_summary(msg.result.outcomes if msg.result else [], "undo")
            return
        if msg.error:
            self.notify(msg.error, title="Undo failed", severity="error", timeout=10)
        if msg.result is not None:
            for o in msg.result.outcomes:
                self.change_state[o.change_id] = (o.state, self.skip_reason(o.change_id, o.message)
                                                  if o.state == "skipped" else o.message)
            kept = [self.change_state[o.change_id][1] for o in msg.result.outcomes if o.state == "skipped"]
            if kept and not msg.result.drift:
                self.notify("Not undone: " + " ".join(kept), severity="warning", timeout=10)
            if msg.result.drift:
                from .screens.drift import DriftScreen

                def decided(override: bool | None) -> None:
                    if override:
                        self.start_undo(list(msg.result.drift), override=True)  # type: ignore[union-attr]

                self.push_screen(DriftScreen(msg.result.drift, self.journal_rows), decided)
            elif not msg.error and not kept:
                done = sum(1 for o in msg.result.outcomes if o.ok)
                self.notify(f"Undid {done} change(s).")
        self.state_changed()

    def on_resumed(self, msg: Resumed) -> None:
        if msg.error or msg.result is None:
            self.notify(msg.error, title="Resume failed", severity="error", timeout=10)
            self.run_inspect()
            return
        result = msg.result
        for o in result.settled:
            self.change_state[o.change_id] = (o.state, o.message)
        self.resumed_remaining = set(result.remaining)
        self.resumed = msg.session_id
        self._land_on_journal = True
        self.pending_step = result.step
        self.session = None
        self.run_inspect()

    def resume_summary(self) -> str:
        """Per change what a resume found, with counts: applied, not applied, changed by someone else."""
        words = {"applied": "applied", "adopted": "applied", "not_applied": "not applied", "planned": "not applied",
                 "skipped": "not applied", "failed": "not applied", "drifted": "changed by someone else",
                 "undone": "undone"}
        counts: dict[str, int] = {}
        for r in self.journal_rows:
            word = words.get(r.state, r.state.replace("_", " "))
            counts[word] = counts.get(word, 0) + 1
        order = ["applied", "not applied", "changed by someone else"]
        parts = [f"{counts.pop(w, 0)} {w}" for w in order] + [f"{n} {w}" for w, n in sorted(counts.items())]
        return f"Resumed session {self.resumed}: " + ", ".join(parts) + "."

    def refresh_journal(self) -> None:
        """Reload the journal if its view is on the stack (shown now or under a dialog)."""
        from .screens.journal import JournalScreen

        if any(isinstance(s, JournalScreen) for s in self.screen_stack):
            if self._journal_following:  # one load at a time; the next starts when it lands
                self._journal_behind = True
                return
            # following a running apply or undo: the journal only, not a GET per applied change
            # per event (that spent Storage's read budget hundreds of times over at scale)
            self._journal_following = True
            self.load_journal(drift=False)

