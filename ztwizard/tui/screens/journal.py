"""The journal view: the session's changes and their state; undo per change, step or session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ...core import DriftRow, JournalRow
from ..render import SYM, cut, short_name

if TYPE_CHECKING:
    from ..app import WizardApp

STATE_STYLE = {"applied": "green", "failed": "red", "in_flight": "yellow", "undo_in_flight": "yellow",
               "undone": "dim", "drifted": "magenta", "undo_failed": "red", "planned": "dim",
               "not_applied": "dim", "skipped": "dim"}
UNDOABLE = ("applied", "undo_failed", "drifted")
COLUMNS = ("state", "check", "action", "undo", "resource")
# what undoing each kind of change sends: an undone create is a delete; shown only where an undo
# would send something (a skipped, failed or undone row has nothing to take back)
UNDO_VERB = {"create": "delete", "update": "restore", "delete": "re-create"}
STATE_WORD = {"in_flight": "in flight", "undo_in_flight": "undoing", "not_applied": "not applied",
              "undo_failed": "undo failed", "drifted": "changed since"}


class JournalScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("u", "undo_change", "Undo"),
        Binding("s", "undo_step", "Undo step"),
        Binding("S", "undo_session", "Undo all", key_display="S"),
        # dry-run: the undo keys leave the footer and say why when pressed
        Binding("u,s,S", "undo_disabled", "Undo", show=False),
        Binding("d", "drift", "Drift"),
        Binding("o", "open_step", "Step"),
        Binding("r", "reload", "Reload", show=False),
    ]

    app: WizardApp  # type: ignore[assignment]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="journal-title")
        yield DataTable(id="journal", cursor_type="row", zebra_stripes=True)
        yield Static(id="journal-detail")
        yield Footer(compact=True)

    _ready = False

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#journal", DataTable).focus()
        self.refresh_state()

    def on_screen_resume(self) -> None:
        self.app.load_journal()  # shown again: read the journal now, not what it held before

    def on_resize(self) -> None:
        self._columns = None
        self.refresh_state()

    _columns: tuple[int, ...] | None = None

    def _widths(self) -> tuple[int, ...]:
        """state, check, action, undo, resource: the resource takes what the others leave."""
        fixed = (13, 11, 6, 9)
        room = max(self.size.width - sum(fixed) - 2 * (len(fixed) + 1) - 2, 12)
        return (*fixed, room)

    _shown: list[tuple[str, tuple[Text | str, ...]]] = []  # (change id, cells) as the table shows them

    def _cells(self, r: JournalRow, widths: tuple[int, ...]) -> tuple[Text | str, ...]:
        state = self.app.change_state.get(r.change_id, (r.state, ""))[0] if r.state in (
            "applied", "in_flight") else r.state
        return (Text(cut(STATE_WORD.get(state, state), widths[0]), style=STATE_STYLE.get(state, "")),
                r.check, r.action, UNDO_VERB.get(r.action, "") if state in UNDOABLE else "",
                cut(short_name(r.resource_id), widths[4]))

    @property
    def rows(self) -> list[JournalRow]:
        return self.app.journal_rows

    def refresh_state(self) -> None:
        try:
            heading = self.query_one("#journal-title", Static)
            table = self.query_one("#journal", DataTable)
        except NoMatches:  # a journal load that lands while the app exits and takes the screen down
            return
        if not self._ready:
            return
        app = self.app
        sid = app.core.session_id or app.journal_session or "none yet"
        status = app.journal_status
        title = f"Session {sid}{f' ({status})' if status else ''} {SYM['dot']} {len(self.rows)} change(s)"
        if app.resumed and app.resumed == app.journal_session:
            title += "\n" + app.resume_summary()
        if app.dry_run:
            title += "\nDRY-RUN: undo is disabled (started with --dry-run)."
        heading.update(title)
        widths = self._widths()
        if widths != self._columns:
            table.clear(columns=True)
            for name, w in zip(COLUMNS, widths, strict=True):
                table.add_column(name, width=w, key=name)
            self._columns = widths
            self._shown = []
        cells = [self._cells(r, widths) for r in self.rows]
        ids = [r.change_id for r in self.rows]
        if ids == [i for i, _c in self._shown]:  # the same rows (a run moving on): redraw what moved
            for (cid, was), now in zip(self._shown, cells, strict=True):
                for name, before, after in zip(COLUMNS, was, now, strict=True):
                    if before != after:
                        table.update_cell(cid, name, after)
        else:
            keep = table.cursor_row
            table.clear()
            for cid, row in zip(ids, cells, strict=True):
                table.add_row(*row, key=cid)
            if self.rows:
                table.move_cursor(row=min(keep, len(self.rows) - 1))
        self._shown = list(zip(ids, cells, strict=True))
        self._detail()
        self.refresh_bindings()

    def current(self) -> JournalRow | None:
        table = self.query_one("#journal", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _detail(self) -> None:
        row = self.current()
        detail = self.query_one("#journal-detail", Static)
        if row is None:
            detail.update(Text("No change has been journalled in this session yet.", style="dim"))
            return
        t = Text()
        t.append(f"{row.title or row.check}", style="bold")
        t.append(f"  {row.method} {row.resource_id}\n", style="dim")
        if row.message:
            t.append(row.message + "\n")
        if row.state in UNDOABLE:
            t.append(f"Undo (u) would {UNDO_VERB.get(row.action, 'restore')} it"
                     + (" (the wizard created it)" if row.action == "create" else "") + ".\n")
        if row.drift:
            t.append("Changed by someone else since; press d for the three-way view.", style="magenta")
        detail.update(t)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo_disabled":
            return self.app.dry_run
        if action.startswith("undo_"):
            return not self.app.dry_run
        return True

    def action_undo_disabled(self) -> None:
        self.notify("Dry-run: undo is disabled (the wizard was started with --dry-run); nothing is "
                    "written to Azure.", severity="warning")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.app.load_journal()

    def action_open_step(self) -> None:
        row = self.current()
        if row and row.step:
            self.app.pop_screen()
            self.app.action_open_step(row.step)

    def _undo(self, ids: list[str], what: str, word: str | None = None, whole: bool = False) -> None:
        from .confirm import ConfirmScreen

        if self.app.dry_run:
            self.action_undo_disabled()
            return
        if self.app.applying or self.app.undoing:
            self.notify("An apply or undo is running: wait until it finishes.", severity="warning")
            return
        ids = [r.change_id for r in self.rows if r.change_id in ids and r.state in UNDOABLE]
        if not ids:
            self.notify("Nothing to undo there: only applied changes can be undone.")
            return
        body = Text()
        for r in self.rows:
            if r.change_id in ids:
                body.append(f"{UNDO_VERB.get(r.action, 'restore')} ", style="bold")
                body.append(f"{short_name(r.resource_id)}  {r.check}\n")

        def decided(ok: bool | None) -> None:
            if ok:
                self.app.start_undo(ids, whole=whole)

        self.app.push_screen(ConfirmScreen(f"Undo {what} ({len(ids)} change(s))?", body, word=word), decided)

    def action_undo_change(self) -> None:
        row = self.current()
        if row:
            self._undo([row.change_id], "this change")

    def action_undo_step(self) -> None:
        row = self.current()
        if row:
            self._undo([r.change_id for r in self.rows if r.step == row.step], f"step {row.step}")

    def action_undo_session(self) -> None:
        self._undo([r.change_id for r in self.rows], "the whole session", word="undo", whole=True)

    def action_drift(self) -> None:
        """Re-read the resource now and show before / wizard wrote / now where they differ."""
        row = self.current()
        if row is None:
            return
        if row.action != "update" or row.state not in UNDOABLE:
            self.notify(f"Nothing to compare: drift is read for applied updates; this change is "
                        f"{STATE_WORD.get(row.state, row.state)} ({row.action}).")
            return
        self.app.read_drift(row.change_id)

    def show_drift(self, change_id: str, rows: list[DriftRow]) -> None:
        from .drift import DriftScreen

        if not rows:
            self.notify("Read just now: the resource still holds what the wizard wrote.")
            return

        def decided(override: bool | None) -> None:
            if override:
                self.app.start_undo([change_id], override=True)

        self.app.push_screen(DriftScreen({change_id: rows}, self.rows), decided)
