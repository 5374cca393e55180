"""The step view: why it matters, findings per resource, proposed changes with diff and request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, ProgressBar, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from ...model import Change
from ...steps import ARTICLES, STEP_BY_ID, STEPS
from ..render import (
    GLYPH,
    STATE_GLYPH,
    STYLE,
    SYM,
    WORD,
    change_detail,
    change_label,
    counts_text,
    findings_text,
    hanging,
    telling_apart,
    value,
    where,
    where_bits,
)

if TYPE_CHECKING:
    from ..app import WizardApp



class StepScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("space", "toggle_change", "Select"),
        Binding("a", "apply", "Apply"),
        Binding("a", "apply_disabled", "Apply", show=False),  # dry-run: absent, and says why when pressed
        Binding("e", "edit_params", "Params"),
        # c switches tabs; the footer names the tab it leads to
        Binding("c", "show_changes", "Changes"),
        Binding("c", "show_findings", "Findings"),
        Binding("w", "waive", "Waive"),
        Binding("n", "next_step", "Next"),
        Binding("p", "prev_step", "Prev", show=False),  # n, p in help: the footer keeps q Quit at 80 columns
        Binding("j", "journal", "Journal"),
        # the same keys keep working on the changes tab, without taking footer room there
        Binding("n", "next_step_any", "Next", show=False),
        Binding("p", "prev_step_any", "Prev", show=False),
        Binding("j", "journal_any", "Journal", show=False),
    ]

    app: WizardApp  # type: ignore[assignment]

    def __init__(self, step_id: str) -> None:
        super().__init__()
        self.step_id = step_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="step-title")
        yield Static(id="banner", classes="hidden")
        with Horizontal(id="apply-row", classes="hidden"):
            yield Static(id="apply-label")
            yield ProgressBar(id="apply-bar", show_eta=False)
        with TabbedContent(id="tabs", initial="findings-tab"):
            with TabPane("Why & findings", id="findings-tab"):
                with VerticalScroll(id="findings-scroll"):
                    yield Static(id="why")
                    yield Static(id="findings")
            with TabPane("Changes", id="changes-tab"):
                yield OptionList(id="changes")
                with VerticalScroll(id="detail-scroll"):
                    yield Static(id="detail")
        yield Footer(compact=True)

    _ready = False

    def on_mount(self) -> None:
        self._ready = True
        self.show_step(self.step_id)
        self.query_one("#findings-scroll").focus()  # arrows and page keys scroll the findings

    # ---- state ----------------------------------------------------------------------------
    def show_step(self, step_id: str) -> None:
        self.step_id = step_id
        self._changes_layout: tuple[int | str | None, ...] | None = None  # the next refresh rebuilds the rows
        self._contexts: list[str] = []
        self._rows: list[tuple[str, bool]] = []
        self.refresh_state()
        self.query_one("#findings-scroll").scroll_home(animate=False)

    @property
    def changes(self) -> list[Change]:
        res = self.app.results.get(self.step_id)
        return list(res.changes) if res else []

    def refresh_state(self) -> None:
        if not self._ready:
            return
        app = self.app
        step = STEP_BY_ID[self.step_id]
        res = app.results.get(self.step_id)
        status = res.status if res else "pending"
        title = Text()
        title.append(GLYPH.get(status, "?"), style=STYLE.get(status, ""))
        title.append(f" {step.id} {SYM['dot']} ", style="bold")
        title.append(step.title, style="bold")
        title.append(f"\n  {ARTICLES[step.article]} step {step.number} {SYM['dot']} {WORD.get(status, status)} {SYM['dot']} ")
        title.append_text(counts_text(res))
        self.query_one("#step-title", Static).update(title)

        banner = self.query_one("#banner", Static)
        msg = ""
        if app.dry_run:
            msg = "DRY-RUN: apply is disabled (started with --dry-run); preview only."
        if self.step_id in app.apply_error:
            msg = (msg + "\n" if msg else "") + "Last apply: " + app.apply_error[self.step_id]
        banner.update(msg)
        banner.set_class(not msg, "hidden")

        shown = (self.step_id, id(res))
        if shown != getattr(self, "_shown", None):
            self._shown = shown
            self.query_one("#why", Static).update(Text(step.why + "\n", style="italic"))
            self.query_one("#findings", Static).update(
                hanging(findings_text(res.findings)) if res else Text("Not inspected yet" + SYM["ellipsis"], style="dim"))
        self._refresh_apply_row()
        self._refresh_changes()
        self.refresh_bindings()

    def _refresh_apply_row(self) -> None:
        row = self.query_one("#apply-row")
        ids = [c.id for c in self.changes]
        states = [self.app.change_state.get(i, ("pending", ""))[0] for i in ids]
        active = self.app.applying == self.step_id
        row.set_class(not active, "hidden")
        if active:
            chosen = self.app.selection(self.step_id)
            total = len([i for i in ids if i in chosen]) or 1
            done = sum(1 for i, s in zip(ids, states, strict=True)
                       if i in chosen and s in ("applied", "adopted", "failed", "skipped"))
            self.query_one("#apply-label", Static).update(f"Applying {done}/{total}")
            self.query_one("#apply-bar", ProgressBar).update(total=total, progress=done)

    def _refresh_changes(self) -> None:
        sl = self.query_one("#changes", OptionList)
        changes = self.changes
        chosen = self.app.selection(self.step_id)
        # the resource id too: an edited parameter renames what a change creates, keeping its id
        # "[x] " and the state glyph before the label, the list's padding and scrollbar after it
        width = sl.size.width - 8 if sl.size.width else None
        layout = (width, *(f"{c.id}:{c.resource_id}" for c in changes))
        rows = [(self.app.change_state.get(c.id, ("pending", ""))[0], c.id in chosen) for c in changes]

        def label(c: Change, context: str, row: tuple[str, bool]) -> Text:
            t = Text("[x] " if row[1] else "[ ] ")
            t.append(STATE_GLYPH.get(row[0], " ") + " ")
            t.append_text(change_label(c, context, width))
            return t

        if layout != getattr(self, "_changes_layout", None):
            keep = sl.highlighted
            self._contexts = self.row_contexts(changes)
            sl.clear_options()
            sl.add_options(Option(label(c, context, row), id=c.id)
                           for c, context, row in zip(changes, self._contexts, rows, strict=True))
            if changes:
                sl.highlighted = min(keep or 0, len(changes) - 1)
            self._changes_layout = layout
        else:  # the same rows: during an apply only a state glyph or a box moves, so only its row is redrawn
            for c, context, row, was in zip(changes, self._contexts, rows, self._rows, strict=True):
                if row != was:
                    sl.replace_option_prompt(c.id, label(c, context, row))
        self._rows = rows
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.get_tab("changes-tab").label = f"Changes ({len(chosen & {c.id for c in changes})}/{len(changes)})"
        self._refresh_detail()

    def _refresh_detail(self) -> None:
        sl = self.query_one("#changes", OptionList)
        changes = self.changes
        detail = self.query_one("#detail", Static)
        if not changes:
            res = self.app.results.get(self.step_id)
            manual = res is not None and any(f.remediation == "manual" and f.status in ("fail", "manual")
                                             for f in res.findings)
            detail.update(Text("No ARM change is proposed for this step."
                               + (" Findings left to a person say what to do." if manual else ""),
                               style="dim"))
            return
        idx = sl.highlighted if sl.highlighted is not None else 0
        change = changes[min(idx, len(changes) - 1)]
        t = Text()
        state, message = self.app.change_state.get(change.id, ("pending", ""))
        if state == "failed":
            t.append("FAILED: ", style="bold red")
            t.append((message or "ARM refused the change.") + "\n")
            t.append("Left unchanged: ", style="bold")
            t.append(", ".join(f"{p} stays {value(v)}" for p, v in _leaves(change.before).items())
                     or "the resource as it was", style="")
            t.append("\n\n")
        elif state == "skipped":
            t.append("SKIPPED: ", style="bold yellow")
            t.append((message or "not attempted") + "\n\n")
        elif state == "adopted":
            t.append("ADOPTED: ", style="bold green")
            t.append((message or "already created by this wizard; nothing was sent") + "\n\n")
        elif state in ("applied", "undone", "in_flight", "drift"):
            t.append(f"{state.replace('_', ' ')}", style="bold")
            t.append(f"{': ' + message if message else ''}\n\n")
        room = self.query_one("#detail-scroll").scrollable_content_region.width
        needs = [self.app.describe_change(c) for c in self.app.core.requires([change.id])]
        t.append_text(change_detail(change, self.app.core.endpoint(), room - 1 if room > 20 else None,
                                    context=self.context(change), needs=needs))
        detail.update(t)

    def row_contexts(self, changes: list[Change]) -> list[str]:
        """Rows that would read the same say what sets each apart (what it is on, subscription,
        group, region), and only that, so a row stays one line at 80 columns."""
        names = [change_label(c).plain for c in changes]
        out = [""] * len(changes)
        for name in {n for n in names if names.count(n) > 1}:
            idx = [i for i, n in enumerate(names) if n == name]
            bits = [where_bits(changes[i].resource_id, dict(self.app.subscriptions),
                               self.app.core.region_of(changes[i].resource_id)) for i in idx]
            for i, text in zip(idx, telling_apart(bits), strict=True):
                out[i] = text
        return out

    def context(self, change: Change) -> str:
        """Subscription display name, resource group (or subscription-wide) and region."""
        return where(change.resource_id, dict(self.app.subscriptions), self.app.core.region_of(change.resource_id))

    def on_resize(self) -> None:
        self._refresh_changes()  # rows are cut to the list's width
        self._refresh_detail()  # the diff is wrapped to the pane's width

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._refresh_detail()
        self.query_one("#detail-scroll").scroll_home(animate=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_toggle_change()

    def action_toggle_change(self) -> None:
        """Select or deselect the highlighted change for the next apply."""
        sl = self.query_one("#changes", OptionList)
        opt = sl.highlighted_option
        if opt is None or not opt.id:
            return
        followed = self.app.toggle_change(self.step_id, opt.id)
        if followed:
            self.notify(followed, timeout=8)
        self._refresh_changes()

    # ---- actions --------------------------------------------------------------------------
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        self.call_after_refresh(self._refresh_changes)  # the list and the pane have their width
        self.call_after_refresh(self._refresh_detail)  # only once shown

    @property
    def on_changes(self) -> bool:
        return self.query_one("#tabs", TabbedContent).active == "changes-tab"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Per tab, only the keys that act there are shown, so the footer fits 80 columns."""
        if action == "apply":
            return not self.app.dry_run  # in dry-run absent from the footer; the banner says why
        if action == "apply_disabled":
            return self.app.dry_run
        if action in ("toggle_change", "edit_params", "show_findings"):
            if not self.on_changes:
                return False
            if action == "edit_params":
                return True if any(c.params for c in self.changes) else None
        if action in ("show_changes", "next_step", "prev_step", "journal", "waive"):
            return not self.on_changes
        return True

    def action_journal(self) -> None:
        self.app.action_journal()

    def action_journal_any(self) -> None:
        self.app.action_journal()

    def action_next_step_any(self) -> None:
        self._step_offset(1)

    def action_prev_step_any(self) -> None:
        self._step_offset(-1)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_show_changes(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "changes-tab"
        self.query_one("#changes").focus()

    def action_show_findings(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "findings-tab"
        self.query_one("#findings-scroll").focus()

    def _step_offset(self, delta: int) -> None:
        ids = [s.id for s in STEPS]
        self.show_step(ids[(ids.index(self.step_id) + delta) % len(ids)])

    def action_next_step(self) -> None:
        self._step_offset(1)

    def action_prev_step(self) -> None:
        self._step_offset(-1)

    def action_apply_disabled(self) -> None:
        self.notify("Dry-run: apply is disabled (the wizard was started with --dry-run); nothing is "
                    "written to Azure.", severity="warning")

    def action_apply(self) -> None:
        from .confirm import ConfirmApplyScreen

        if self.app.dry_run:
            self.action_apply_disabled()
            return
        if self.app.applying or self.app.undoing:
            self.notify("An apply or undo is running: wait until it finishes.", severity="warning")
            return
        chosen = self.app.chosen_changes(self.step_id)
        if not chosen:
            self.notify("No change selected: open Changes (c) and press space to select.",
                        severity="warning")
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.app.applying = self.step_id
                for c in chosen:
                    self.app.change_state[c.id] = ("pending", "")
                self.app.run_apply(self.step_id, chosen)
                self.refresh_state()

        self.app.push_screen(ConfirmApplyScreen(self.step_id, chosen), confirmed)

    def action_waive(self) -> None:
        from .waive import WaiveScreen

        res = self.app.results.get(self.step_id)
        open_findings = [f for f in (res.findings if res else [])
                         if f.status in ("fail", "manual", "error") and not f.waiver]
        if not open_findings:
            self.notify("Nothing to waive here: no failing or manual finding without a waiver.")
            return
        self.app.push_screen(WaiveScreen(open_findings, lambda f, reason, expires, by:
                                         self.app.waive(self.step_id, f, reason, expires, by)))

    def action_edit_params(self) -> None:
        from .params import ParamsScreen

        sl = self.query_one("#changes", OptionList)
        changes = self.changes
        if not changes:
            return
        change = changes[min(sl.highlighted or 0, len(changes) - 1)]
        if not change.params:
            self.notify("This change has no parameters to edit.")
            return

        self.app.push_screen(ParamsScreen(change, lambda values: self.app.edit_params(self.step_id, change.id, values)))


def _leaves(obj: object, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict) and obj:
        out: dict[str, object] = {}
        for k, v in obj.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj} if prefix else {}
