"""How plan data reads on screen: glyphs, diffs, requests, findings.

Every status has a distinct glyph and word, so nothing depends on colour (NO_COLOR, monochrome
terminals, screen readers reading the text)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from .. import resource_id as rid
from ..model import Change, Finding, StepResult

GLYPH = {"pass": "✓", "fail": "✗", "manual": "!", "error": "E", "not_applicable": "–", "pending": "·"}
# a change's progress in the list: pending, in flight, applied, failed, skipped, undone, drifted
STATE_GLYPH = {"pending": " ", "in_flight": "…", "applied": "✓", "adopted": "✓", "failed": "✗", "skipped": "-",
               "undone": "↺", "drift": "≠"}
SYM = {"times": "×", "arrow": "→", "dot": "·", "ellipsis": "…"}
_UNICODE = {id(d): dict(d) for d in (GLYPH, STATE_GLYPH, SYM)}
_ASCII = {id(GLYPH): {"pass": "+", "fail": "x", "manual": "!", "error": "E", "not_applicable": "-", "pending": "."},
          id(STATE_GLYPH): {"pending": " ", "in_flight": "~", "applied": "+", "adopted": "+", "failed": "x", "skipped": "-",
                            "undone": "u", "drift": "#"},
          id(SYM): {"times": "x", "arrow": "->", "dot": "-", "ellipsis": "..."}}


def use_ascii(on: bool) -> None:
    """Glyphs a non-UTF-8 terminal can show (as the text plan does); the tables change in place so
    every screen that imported them follows."""
    for table in (GLYPH, STATE_GLYPH, SYM):
        table.clear()
        table.update((_ASCII if on else _UNICODE)[id(table)])


def ascii_locale() -> bool:
    """True when the terminal's encoding cannot show the wizard's glyphs (LANG=C, latin-1)."""
    import locale
    import sys

    enc = getattr(sys.__stdout__, "encoding", None) or locale.getpreferredencoding(False) or ""
    return "utf" not in enc.lower()
STYLE = {"pass": "green", "fail": "bold red", "manual": "yellow", "error": "bold magenta",
         "not_applicable": "dim", "pending": "dim"}
WORD = {"pass": "passing", "fail": "failing", "manual": "manual", "error": "error",
        "not_applicable": "n/a", "pending": "not inspected"}


def glyph(status: str) -> Text:
    return Text(GLYPH.get(status, "?"), style=STYLE.get(status, ""))


def short_name(resource_id: str) -> str:
    """`stblob01 (storageAccounts)`: enough to recognise a resource in 80 columns."""
    try:
        p = rid.parse(resource_id)
    except Exception:  # noqa: BLE001 - a display helper must not fail on odd ids
        return resource_id
    kind = p.type.rsplit("/", 1)[-1] if p.type else ""
    if not p.name:
        return resource_id or "(scope)"
    name = p.name
    if p.type.count("/") >= 2 and p.parent:  # a child: say whose (stfiles/default)
        try:
            parent = rid.parse(p.parent).name
        except Exception:  # noqa: BLE001
            parent = ""
        if parent:
            name = f"{parent}/{name}"
    return f"{name} ({kind})" if kind else name


COUNTED = ("fail", "manual", "pass")


def count_widths(results: Iterable[StepResult]) -> dict[str, int]:
    """Digits per count column, so that rows of hundreds and rows of units line up."""
    widths = dict.fromkeys(COUNTED, 2)
    for r in results:
        c = r.counts()
        for k in COUNTED:
            widths[k] = max(widths[k], len(str(c[k])))
    return widths


def counts_text(result: StepResult | None, widths: dict[str, int] | None = None) -> Text:
    if result is None:
        return Text("not inspected", style="dim")
    c = result.counts()
    w = widths or dict.fromkeys(COUNTED, 2)
    t = Text()
    for i, k in enumerate(COUNTED):
        t.append(f"{' ' if i else ''}{c[k]:>{w[k]}}{GLYPH[k]}", style=STYLE[k] if c[k] else "dim")
    if c["error"]:
        t.append(f" {c['error']}E", style=STYLE["error"])
    return t


def value(v: Any) -> str:
    if v is None:
        return "(absent)"
    return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)


def findings_text(findings: Iterable[Finding]) -> Text:
    """Findings grouped per resource, each with its actual and expected value."""
    by_res: dict[str, list[Finding]] = {}
    for f in findings:
        by_res.setdefault(f.resource_id, []).append(f)
    t = Text()
    for res_id, items in by_res.items():
        t.append(short_name(res_id), style="bold")
        t.append("\n")
        for f in items:
            t.append("  ")
            if f.waiver:  # accepted on purpose: dimmed, with who accepted it and why
                t.append(f"{GLYPH.get(f.status, '?')} {f.check} [{WORD.get(f.status, f.status)}, waived] ", style="dim")
                w = f.waiver
                t.append(f"{w.get('reason', '')}", style="dim italic")
                extra = [f"until {w['expires']}" if w.get("expires") else "", f"by {w['by']}" if w.get("by") else "",
                         str(w.get("id", ""))]
                t.append(f" ({', '.join(x for x in extra if x)})\n", style="dim")
                continue
            t.append_text(glyph(f.status))
            t.append(f" {f.check} ", style="bold")
            by_hand = f.status == "fail" and f.remediation == "manual"  # fails, and a person fixes it
            t.append(f"[{WORD.get(f.status, f.status)}{', manual fix' if by_hand else ''}] ")
            if f.property and f.status in ("fail", "manual"):
                t.append(f"{f.property}: ")
                t.append(value(f.actual), style="red")
                t.append(f" {SYM['arrow']} expected ")
                t.append(value(f.expected), style="green")
                if (f.status == "manual" or by_hand) and f.message:
                    t.append("\n    " + f.message)
            else:
                t.append(f.message or "", style="dim" if f.status == "pass" else "")
            t.append("\n")
    if not by_res:
        t.append("No findings.", style="dim")
    return t


def hanging(text: Text) -> Group:
    """Each line of `text` as a block indented by its own leading spaces, so a line that wraps in a
    narrow pane continues under itself instead of at the pane's left edge."""
    blocks = []
    for line in text.split("\n"):
        n = len(line.plain) - len(line.plain.lstrip(" "))
        blocks.append(Padding(line[n:], (0, 0, 0, n)))
    return Group(*blocks)


def badges(change: Change) -> Text:
    t = Text()
    if change.disruptive:
        t.append(" DISRUPTIVE ", style="bold reverse red")
        t.append(" ")
    if change.billable:
        t.append(" BILLABLE ", style="bold reverse yellow")
        t.append(" ")
    return t


def where_bits(resource_id: str, subscription_names: dict[str, str], region: str = "") -> list[str]:
    """[what it is on, subscription display name, resource group, region]: the scope a resource
    sits in, in words (an entry is "" when it does not apply)."""
    try:
        p = rid.parse(resource_id)
    except Exception:  # noqa: BLE001 - a display helper must not fail on odd ids
        return ["", "", "", region]
    on = ""
    if p.parent and "/providers/" in p.parent and p.type.count("/") == 1:  # an extension resource
        try:
            on = "on " + (rid.parse(p.parent).name or p.parent)
        except Exception:  # noqa: BLE001
            on = ""
    sub = p.subscription or ""
    names = {k.lower(): v for k, v in subscription_names.items()}
    return [on, names.get(sub.lower(), sub) if sub else "",
            p.resource_group or ("subscription-wide" if sub else "tenant-wide"), region]


def where(resource_id: str, subscription_names: dict[str, str], region: str = "") -> str:
    """`on pip-web · Contoso Prod · rg-hub · westeurope`."""
    return f" {SYM['dot']} ".join(b for b in where_bits(resource_id, subscription_names, region) if b)


def telling_apart(bits: list[list[str]]) -> list[str]:
    """For rows that read the same, the one part of their scope that differs for each (what it is
    on, else subscription, group, region), or all the parts that differ when none does alone."""
    width = len(bits[0]) if bits else 0
    alone = next((i for i in range(width) if len({b[i] for b in bits}) == len(bits) and all(b[i] for b in bits)), None)
    keep = [alone] if alone is not None else [i for i in range(width) if len({b[i] for b in bits}) > 1]
    return [f" {SYM['dot']} ".join(b[i] for i in keep if b[i]) for b in bits]


def cut(text: str, width: int) -> str:
    """`text` in `width` columns: whole, or cut with an ellipsis (a cell never wraps or overflows)."""
    return text if len(text) <= width else text[: max(width - len(SYM["ellipsis"]), 1)] + SYM["ellipsis"]


def change_label(change: Change, context: str = "", width: int | None = None) -> Text:
    """Method, resource and check; `context` (subscription, group, region) when the name alone
    would not tell two rows apart. Given `width`, the name is cut with "…" so the check and the
    [disruptive]/[billable] badges stay on the row instead of wrapping below it."""
    method = f"{change.method:<6} "
    badges = [(f"  {change.check}", "dim")]
    if change.disruptive:
        badges.append((" [disruptive]", "red"))
    if change.billable:
        badges.append((" [billable]", "yellow"))
    room = width - len(method) - sum(len(b) for b, _ in badges) if width else None
    if context:  # the bare name: the context says the rest, and the row stays one line
        name = short_name(change.resource_id).split(" (", 1)[0]
        told = f" {context}" if context.startswith("on ") else f" ({context})"
        if room is not None and len(name) + len(told) > room:  # the context tells rows apart: cut the name
            name = cut(name, max(room - len(told), 8))
        name += told
    else:
        name = short_name(change.resource_id)
    if room is not None and len(name) > room:
        name = cut(name, max(room, 8))
    t = Text()
    t.append(method, style="bold")
    t.append(name)
    for text, style in badges:
        t.append(text, style=style)
    return t


def hang(line: str, width: int | None, marker_width: int = 0) -> list[str]:
    """`line` cut to `width` at spaces; continuation lines repeat its marker's room and its indent,
    so a wrapped JSON value still reads as part of its `+`/`-` line (no mid-word cuts unless a word
    alone is wider than the pane)."""
    if not width or len(line) <= width:
        return [line]
    import textwrap

    body = line[marker_width:]
    indent = " " * (marker_width + len(body) - len(body.lstrip(" ")) + 2)
    return textwrap.wrap(line, width=max(width, len(indent) + 12), subsequent_indent=indent,
                         drop_whitespace=False, break_on_hyphens=False) or [line]


def diff_text(change: Change, width: int | None = None) -> Text:
    """A unified before→after diff of only the properties the change sets. Removed lines are
    struck through and added ones bold, so the diff reads without colour (NO_COLOR)."""
    before = json.dumps(change.before, indent=2, sort_keys=True, ensure_ascii=False).splitlines() \
        if change.before else []
    after = json.dumps(change.after, indent=2, sort_keys=True, ensure_ascii=False).splitlines() \
        if change.after else []
    t = Text()
    for line in difflib.unified_diff(before, after, lineterm="", n=3):
        if line.startswith(("---", "+++", "@@")):
            continue
        marker = line[:1]
        style = {"-": "red strike", "+": "bold green"}.get(marker, "dim")
        for i, piece in enumerate(hang(line, width, marker_width=1)):
            if i and marker in "+-":
                piece = marker + piece[1:]  # the marker on every row of a wrapped line
            t.append(piece.rstrip() + "\n", style=style)
    if not t.plain:
        t.append("(no property changes)", style="dim")
    return t


def request_text(change: Change, endpoint: str, width: int | None = None) -> Text:
    """The exact request: method, URL with api-version, preconditions and body."""
    url = f"{endpoint.rstrip('/')}{change.resource_id}"
    if change.api_version:
        url += f"?api-version={change.api_version}"
    t = Text()
    t.append(f"{change.method} ", style="bold")
    t.append(url + "\n")
    if change.etag and change.action != "create":
        t.append(f"If-Match: {change.etag}\n", style="dim")
    if change.body is not None:
        body = json.dumps(change.body, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
        t.append("\n".join(piece for line in body for piece in hang(line, width)))
    return t


def change_detail(change: Change, endpoint: str, width: int | None = None, context: str = "",
                  needs: Iterable[str] = ()) -> Text:
    t = Text()
    t.append(change.title or change.check, style="bold")
    t.append(f"  ({change.action} {SYM['dot']} {change.check})\n", style="dim")
    if context:
        t.append("Where: ", style="bold")
        t.append(context + "\n")
    for need in needs:
        t.append("Needs: ", style="bold")
        t.append(need + " (selected with it)\n")
    t.append_text(badges(change))
    if change.risk:
        t.append("Risk: ", style="bold")
        t.append(change.risk + "\n")
    elif change.disruptive or change.billable:
        t.append("\n")
    if change.params:
        t.append("Parameters (e to edit): ", style="bold")
        t.append(", ".join(f"{k}={v}" for k, v in change.params.items()) + "\n")
    t.append(f"\nBefore {SYM['arrow']} after\n", style="bold underline")
    t.append_text(diff_text(change, width))
    t.append("\nRequest\n", style="bold underline")
    t.append_text(request_text(change, endpoint, width))
    return t
