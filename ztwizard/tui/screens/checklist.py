"""The checklist: four articles, their numbered steps, status glyphs, counts and filters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from ...model import Status
from ...steps import ARTICLES, STEPS
from ..render import GLYPH, STYLE, SYM, count_widths, counts_text

if TYPE_CHECKING:
    from ..app import WizardApp

ARTICLE_ORDER = [None, *ARTICLES]


def hardened(app: WizardApp) -> tuple[int, int, int, int]:
    """(steps passing, steps applicable, findings passing, findings judged)."""
    steps_ok = steps_applicable = ok = judged = 0
    for r in app.results.values():
        c = r.counts()
        ok += c["pass"]
        judged += c["pass"] + c["fail"] + c["manual"] + c["error"]
        if r.status != "not_applicable":
            steps_applicable += 1
            steps_ok += r.status == "pass"
    return steps_ok, steps_applicable, ok, judged


def scope_line(app: WizardApp, width: int) -> Text:
    """`Scope: Contoso Workload (prod), Contoso Connectivity · resource groups: all`, cut to fit."""
    names = dict(app.subscriptions)
    chosen = app.core.subscriptions
    if chosen is None or set(chosen) >= set(names):
        subs = ", ".join(names.values()) if names else "every subscription the sign-in can see"
        if names and len(names) > 1:
            subs = f"all {len(names)}: " + subs
    else:
        subs = ", ".join(names.get(s, s) for s in chosen)
    groups = list(getattr(app.core.gateway.target, "resource_groups", None) or [])
    rgs = ", ".join(groups) if groups else "all"
    t = Text("Scope: ", style="bold")
    skipped = sum(1 for n in app.plan_notes if n.get("kind") == "subscription_skipped")
    warn = f" {SYM['dot']} {skipped} skipped" if skipped else ""
    tail = f" {SYM['dot']} resource groups: {rgs} {SYM['dot']} s changes"
    room = width - len("Scope: ") - len(tail) - len(warn)
    if len(subs) > room:
        subs = subs[: max(room - len(SYM["ellipsis"]), 8)] + SYM["ellipsis"]
    t.append(subs)
    t.append(warn, style="bold yellow")
    t.append(tail, style="dim")
    return t


class ChecklistScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "open", "Open", priority=True),
        Binding("f", "failing", "Failing"),
        Binding("t", "article", "Article"),
        Binding("s", "app.scope", "Scope", show=False),  # the scope line says "s changes": q Quit keeps its room
        Binding("j", "app.journal", "Journal"),
        Binding("r", "app.reinspect", "Re-inspect"),
    ]

    app: WizardApp  # type: ignore[assignment]

    only_failing = False
    article: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="summary-row"):
            yield Static(id="summary")
            yield ProgressBar(id="hardened", show_eta=False, show_percentage=True)
        with Horizontal(id="inspect-row"):
            yield Static(id="inspect-label")
            yield ProgressBar(id="inspect-bar", show_eta=False)
        yield Static(id="scope")
        yield Static(id="filters")
        with Horizontal(id="checklist-body"):
            yield OptionList(id="checklist")
            with VerticalScroll(id="preview"):
                yield Static(id="preview-text")
        yield Footer(compact=True)

    _ready = False

    def on_mount(self) -> None:
        self._ready = True
        self.refresh_state()
        self.query_one("#checklist").focus()

    @property
    def checklist(self) -> OptionList:
        return self.query_one("#checklist", OptionList)

    def visible_steps(self) -> list[str]:
        out = []
        for s in STEPS:
            if self.article and s.article != self.article:
                continue
            res = self.app.results.get(s.id)
            if self.only_failing and (res is None or res.status not in ("fail", "error", "manual")):
                continue
            out.append(s.id)
        return out

    def refresh_state(self) -> None:
        if not self._ready:
            return
        app = self.app
        steps_ok, applicable, ok, judged = hardened(app)
        summary = self.query_one("#summary", Static)
        if app.results:
            summary.update(f"Hardened: {steps_ok}/{applicable} steps pass {SYM['dot']} {ok}/{judged} findings")
        else:
            summary.update("Hardened: not inspected yet")
        bar = self.query_one("#hardened", ProgressBar)
        bar.update(total=max(judged, 1), progress=ok)

        row = self.query_one("#inspect-row")
        done, total, label = app.inspect_progress
        row.display = app.inspecting
        if app.inspecting:
            self.query_one("#inspect-label", Static).update(f"Inspecting: {label}"[:40])
            self.query_one("#inspect-bar", ProgressBar).update(total=max(total, 1), progress=done)

        bits = ["only failing" if self.only_failing else "all steps",
                ARTICLES[self.article] if self.article else "all articles"]
        if app.dry_run:
            bits.append("DRY-RUN (apply, undo disabled)")
        self.query_one("#filters", Static).update("Showing " + f" {SYM['dot']} ".join(bits))
        self.query_one("#scope", Static).update(scope_line(app, max(self.size.width - 2, 40)))
        self._rebuild()
        self._preview()

    def _prompt(self, step_id: str, widths: dict[str, int]) -> Text:
        from ...steps import STEP_BY_ID

        step = STEP_BY_ID[step_id]
        res = self.app.results.get(step_id)
        status = res.status if res else "pending"
        counts = counts_text(res, widths) if res else Text(SYM["ellipsis"], style="dim")
        width = max(self.checklist.size.width - 4, 40)
        title_room = max(width - 10 - len(counts.plain) - 2, 8)
        title = step.title if len(step.title) <= title_room else step.title[: title_room - len(SYM["ellipsis"])] + SYM["ellipsis"]
        t = Text()
        t.append(GLYPH.get(status, "?"), style=STYLE.get(status, ""))
        t.append(f" {step_id:<10}")
        t.append(title.ljust(title_room))
        t.append("  ")
        t.append_text(counts)
        return t

    def _rebuild(self, force: bool = False) -> None:
        key = (tuple((sid, r.status, tuple(r.counts().values())) for sid, r in self.app.results.items()),
               self.only_failing, self.article, self.checklist.size.width)
        if key == getattr(self, "_built", None) and not force:
            return  # progress ticks alone do not rebuild the list
        self._built = key
        ol = self.checklist
        keep = ol.highlighted_option.id if ol.highlighted_option is not None else None
        options: list[Option] = []
        visible = self.visible_steps()
        widths = count_widths(self.app.results.values())  # once per rebuild: counting walks every finding
        for article, name in ARTICLES.items():
            ids = [s.id for s in STEPS if s.article == article and s.id in visible]
            if not ids:
                continue
            options.append(Option(Text(name, style="bold underline"), id=f"article:{article}", disabled=True))
            options.extend(Option(self._prompt(sid, widths), id=sid) for sid in ids)
        ol.clear_options()
        ol.add_options(options)
        if not visible:
            ol.add_option(Option(Text("No steps match the filters.", style="dim"), disabled=True))
            return
        target = keep if keep in visible else visible[0]
        ol.highlighted = ol.get_option_index(target)

    def on_resize(self) -> None:
        wide = self.size.width >= 110
        self.query_one("#preview").display = wide
        self._rebuild()
        self._preview()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._preview()

    def _preview(self) -> None:
        """On wide terminals: the highlighted step's why and its checks, beside the list."""
        from ...steps import STEP_BY_ID

        if not self.query_one("#preview").display:
            return
        sid = self.highlighted_step()
        step = STEP_BY_ID.get(sid or "")
        if step is None:
            return
        res = self.app.results.get(step.id)
        t = Text()
        t.append(f"{step.id} {SYM['dot']} {step.title}\n", style="bold")
        t.append(step.why + "\n\n", style="italic")
        by_check: dict[str, list[Status]] = {}
        for f in res.findings if res else []:
            by_check.setdefault(f.check, []).append(f.status)
        from ...model import worst

        for check in step.checks:
            status = worst(by_check.get(check.id, [])) if res else "pending"
            t.append(GLYPH.get(status, "?"), style=STYLE.get(status, ""))
            t.append(f" {check.id:<11}{check.title}\n")
        if res:
            t.append(f"\n{len(res.changes)} change(s) proposed {SYM['dot']} enter to open\n", style="dim")
        self.query_one("#preview-text", Static).update(t)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and not event.option.id.startswith("article:"):
            self.app.action_open_step(event.option.id)

    def action_open(self) -> None:
        opt = self.checklist.highlighted_option
        if opt is not None and opt.id and not opt.id.startswith("article:"):
            self.app.action_open_step(opt.id)

    def action_failing(self) -> None:
        self.only_failing = not self.only_failing
        self.refresh_state()

    def action_article(self) -> None:
        i = ARTICLE_ORDER.index(self.article)
        self.article = ARTICLE_ORDER[(i + 1) % len(ARTICLE_ORDER)]
        self.refresh_state()

    def highlighted_step(self) -> str | None:
        opt = self.checklist.highlighted_option
        return opt.id if opt is not None else None
