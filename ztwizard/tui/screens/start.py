"""Start: the target, the subscriptions in scope (with a filter), and an offer to resume."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from ..app import WizardApp


class StartScreen(Screen[None]):
    BINDINGS = [
        Binding("ctrl+s", "inspect", "Inspect"),
        Binding("space", "toggle_sub", "Toggle"),
        Binding("escape", "leave_filter", "Back", show=False),
        Binding("r", "resume", "Resume"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("asterisk", "toggle_all", "All/none", key_display="*"),
        Binding("g", "groups", "Groups"),
    ]

    app: WizardApp  # type: ignore[assignment]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="start"):
            yield Static(id="target")
            yield Static(id="resume-offer", classes="hidden")
            yield Static("Subscriptions in scope ([x] inspected; space toggles, enter inspects):", classes="label", markup=False)
            yield Input(placeholder="filter subscriptions…", id="sub-filter")
            yield OptionList(id="subs")
            yield Static(id="groups-line", markup=False)
            with Horizontal(id="start-buttons"):
                yield Button("Inspect (ctrl+s)", id="inspect", variant="primary")
                yield Button("Resume (r)", id="resume", classes="hidden")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_target()
        self._show_groups()
        if self.app.subscriptions:  # back here after an inspection that read nothing
            self.refresh_state()
        self.query_one("#subs").focus()

    def _show_target(self) -> None:
        text = Text(f"Target: {self.app.core.target_label()}"
                    + ("\nDRY-RUN: apply and undo are disabled." if self.app.dry_run else ""))
        if self.app.start_error:  # a refused sign-in, say: the one sentence and its hint, in place
            text.append(f"\n\n{self.app.start_error}", style="bold red")
        self.query_one("#target", Static).update(text)

    groups: list[str] | None = None  # chosen resource groups; None: the core's (-g), empty: all

    def _show_groups(self) -> None:
        if self.groups is None:
            self.groups = self.app.core.resource_groups
        self.query_one("#groups-line", Static).update(
            f"Resource groups: {', '.join(self.groups) if self.groups else 'all'}  (g chooses)")

    def refresh_state(self) -> None:
        if not self.query("#target"):  # not composed yet (a fresh screen): on_mount shows it
            return
        self._show_target()
        self._show_groups()
        self._fill(self.query_one("#sub-filter", Input).value)
        session = self.app.session
        offer = self.query_one("#resume-offer", Static)
        button = self.query_one("#resume", Button)
        if session is not None:
            where = f" at {session.step}" if session.step else ""
            offer.update(f"An unfinished session {session.id} stopped{where} "
                         f"({session.changes} change(s), {session.in_flight} in flight). "
                         "Press r to resume it, or inspect to start a new one.")
            offer.remove_class("hidden")
            button.remove_class("hidden")
        else:
            offer.add_class("hidden")
            button.add_class("hidden")
        self.refresh_bindings()

    chosen: set[str] | None = None

    def _fill(self, text: str) -> None:
        """One row per subscription, `[x]` when it is inspected, `[ ]` when not: no colour needed."""
        subs = self.query_one("#subs", OptionList)
        if self.chosen is None:  # back from the checklist (s): the scope that was inspected
            scoped = self.app.core.subscriptions
            self.chosen = set(scoped) if scoped else {s for s, _ in self.app.subscriptions}
        chosen = self.chosen
        keep = subs.highlighted
        subs.clear_options()
        needle = text.lower().strip()
        for sid, name in self.app.subscriptions:
            if needle and needle not in sid.lower() and needle not in name.lower():
                continue
            label = Text("[x] " if sid in chosen else "[ ] ", style="bold" if sid in chosen else "dim")
            label.append(f"{name}  " if name != sid else "", style="" if sid in chosen else "dim")
            label.append(sid, style="dim")
            subs.add_option(Option(label, id=sid))
        if subs.option_count:
            subs.highlighted = min(keep or 0, subs.option_count - 1)

    def action_toggle_sub(self) -> None:
        subs = self.query_one("#subs", OptionList)
        opt = subs.highlighted_option
        if opt is None or opt.id is None or self.chosen is None:
            return
        self.chosen.symmetric_difference_update({opt.id})
        self._fill(self.query_one("#sub-filter", Input).value)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_inspect()  # enter is the wizard's "next", never a silent deselect

    def action_leave_filter(self) -> None:
        """Esc in the filter box goes back to the list, keeping the filter."""
        self.query_one("#subs").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#subs").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "inspect":
            self.action_inspect()
        elif event.button.id == "resume":
            self.action_resume()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":
            return self.app.session is not None
        return True

    def action_filter(self) -> None:
        self.query_one("#sub-filter").focus()

    def action_toggle_all(self) -> None:
        everything = {s for s, _ in self.app.subscriptions}
        self.chosen = set() if self.chosen == everything else everything
        self._fill(self.query_one("#sub-filter", Input).value)

    def action_groups(self) -> None:
        from .groups import GroupsScreen

        def chosen(groups: list[str] | None) -> None:
            if groups is not None:
                self.groups = groups
                self._show_groups()

        subs = sorted(self.chosen) if self.chosen else None
        self.app.push_screen(GroupsScreen(subs, self.groups or []), chosen)

    def action_inspect(self) -> None:
        chosen = sorted(self.chosen or ())
        if self.app.subscriptions and not chosen:
            self.notify("Choose at least one subscription (space toggles).", severity="warning")
            return
        everything = len(chosen) == len(self.app.subscriptions)
        self.app.core.set_resource_groups(self.groups or [])
        self.app.start_inspection(None if everything else chosen)

    def action_resume(self) -> None:
        if self.app.session is None:
            self.notify("There is no unfinished session to resume.")
            return
        self.app.accept_resume()
