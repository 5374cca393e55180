"""Editing the parameters of a change (names, prefixes, regions): a form whose fields say their
type and rule, and that refuses a bad value in place, with the core's own sentence."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ...model import Change
from ...steps import CHECK_BY_ID


def rule_words(rule: str) -> str:
    """What a value must be, in the rule's own words ("an IPv4 address (…)", "a valid route table
    name: 1-80 letters…"): the sentence the rule refuses an impossible value with."""
    from ...steps.params import RuleError, coerce

    try:
        coerce(rule, "\x00 ")
    except RuleError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - a rule the form cannot describe still edits
        return rule
    return "any text"


class ParamsScreen(ModalScreen[bool]):
    """Dismisses True once the core accepted the values; a refused value keeps the form open with
    the reason under it, so nothing typed is lost."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+y", "save", "Save")]

    def __init__(self, change: Change, submit: Callable[[dict[str, str]], str]) -> None:
        super().__init__()
        self.change = change
        self.submit = submit  # the values as typed -> "" when accepted, else why they were refused
        declared = {p.name: p for p in (CHECK_BY_ID[change.check].params if change.check in CHECK_BY_ID else [])}
        self.declared = declared

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Parameters of {self.change.title or self.change.check}", style="bold"),
                        classes="dialog-title")
            with VerticalScroll(id="params-form"):
                for key, val in self.change.params.items():
                    param = self.declared.get(key)
                    head = Text(key, style="bold")
                    if param is not None:
                        head.append(f"  ({param.type}) {param.help}", style="")
                        head.append(f"\n  must be {rule_words(param.rule)}", style="dim")
                    yield Static(head, classes="param-label")  # wraps: a rule's words can be long
                    shown = val if isinstance(val, str) else json.dumps(val)
                    yield Input(value=shown, id=f"param-{key}", name=key)
            yield Static(id="params-error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+y)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        first = self.query(Input).first()
        first.focus()
        first.action_end()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    @property
    def error(self) -> str:
        return str(self.query_one("#params-error", Static).render())

    def _refuse(self, why: str, field: Input | None) -> None:
        self.query_one("#params-error", Static).update(Text(why, style="bold red"))
        if field is not None:
            field.focus()

    def action_save(self) -> None:
        out: dict[str, str] = {}
        for inp in self.query(Input):
            key = inp.name or ""
            if not inp.value.strip():
                self._refuse(f"{key} cannot be empty.", inp)
                return
            out[key] = inp.value.strip()
        changed = {k: v for k, v in out.items() if v != str(self.change.params.get(k))}
        if not changed:
            self.dismiss(False)
            return
        why = self.submit(changed)
        if why:
            named = next((inp for inp in self.query(Input) if inp.name and inp.name in why), None)
            self._refuse(why, named)
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
