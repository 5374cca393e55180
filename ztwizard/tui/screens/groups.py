"""Choosing resource groups for the scope (what `-g` does on the command line)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from ...errors import ZtwError

if TYPE_CHECKING:
    from ..app import WizardApp


class GroupsScreen(ModalScreen[list[str] | None]):
    """`[x]` groups are inspected; none marked means every group. Dismisses the chosen names, or
    None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+y", "done", "Done"),
        Binding("space", "toggle_group", "Toggle"),
        Binding("asterisk", "toggle_all", "All/none", key_display="*"),
    ]

    app: WizardApp  # type: ignore[assignment]

    def __init__(self, subscriptions: list[str] | None, chosen: list[str]) -> None:
        super().__init__()
        self.subscriptions = subscriptions
        self.chosen = {g.lower() for g in chosen}
        self.groups: list[tuple[str, str]] = []  # (subscription, name)
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Static(Text("Resource groups in scope", style="bold"), classes="dialog-title")
            yield Static("[x] inspected; none marked: every group. space toggles, * all/none.",
                         id="groups-hint", markup=False)
            yield OptionList(id="groups")
            with Horizontal(classes="buttons"):
                yield Button("Done (ctrl+y)", id="done", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#groups", OptionList).add_option(Option(Text("reading resource groups…", style="dim"),
                                                                disabled=True))
        self.query_one("#groups").focus()
        self.load()

    @work(thread=True, exclusive=True, group="groups")
    def load(self) -> None:
        try:
            groups = self.app.core.list_resource_groups(self.subscriptions)
        except ZtwError as exc:
            self.app.call_from_thread(self._loaded, [], f"{exc.message} {exc.hint}".strip())
            return
        except Exception as exc:  # noqa: BLE001 - said in the dialog, never a traceback
            self.app.call_from_thread(self._loaded, [], f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._loaded, groups, "")

    def _loaded(self, groups: list[tuple[str, str]], error: str) -> None:
        self.groups, self.error = groups, error
        self._fill()

    def _fill(self) -> None:
        ol = self.query_one("#groups", OptionList)
        keep = ol.highlighted
        ol.clear_options()
        if self.error:
            ol.add_option(Option(Text(self.error, style="bold red"), disabled=True))
            return
        names = dict(self.app.subscriptions)
        many = len({s for s, _ in self.groups}) > 1
        for sub, name in self.groups:
            on = name.lower() in self.chosen
            label = Text("[x] " if on else "[ ] ", style="bold" if on else "dim")
            label.append(name)
            if many:
                label.append(f"  {names.get(sub, sub)}", style="dim")
            ol.add_option(Option(label, id=f"{sub}/{name}"))
        if not self.groups:
            ol.add_option(Option(Text("No resource group in the subscriptions in scope.", style="dim"),
                                 disabled=True))
        elif ol.option_count:
            ol.highlighted = min(keep or 0, ol.option_count - 1)

    def action_toggle_group(self) -> None:
        opt = self.query_one("#groups", OptionList).highlighted_option
        if opt is None or opt.id is None:
            return
        self.chosen.symmetric_difference_update({opt.id.rsplit("/", 1)[1].lower()})
        self._fill()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_toggle_group()

    def action_toggle_all(self) -> None:
        every = {n.lower() for _, n in self.groups}
        self.chosen = set() if self.chosen >= every else every
        self._fill()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_done() if event.button.id == "done" else self.action_cancel()

    def action_done(self) -> None:
        every = {n.lower() for _, n in self.groups}
        if self.groups and self.chosen >= every:
            self.dismiss([])  # all of them: no -g at all
            return
        names = sorted({n for _, n in self.groups if n.lower() in self.chosen}, key=str.lower)
        self.dismiss(names)

    def action_cancel(self) -> None:
        self.dismiss(None)
