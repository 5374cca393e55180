"""The plan rendered for people (text, markdown) and machines (json, SARIF 2.1.0)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from . import __version__, plandiff
from .armjson import literal
from .engine import Plan
from .model import Finding
from .redact import scrub, scrub_for_output, scrub_text
from .steps import ARTICLES, CHECK_BY_ID, STEP_BY_ID
from .steps._base import FIXED_BY

GLYPH = {"pass": "✔", "fail": "✘", "manual": "!", "error": "?", "not_applicable": "·"}
ASCII_GLYPH = {"pass": "+", "fail": "x", "manual": "!", "error": "?", "not_applicable": "."}


def render(plan: Plan, fmt: str, *, ascii_only: bool = False) -> str:
    """The plan in `fmt`, with every secret the estate holds redacted (redact.py): a plan is
    shared (CI artefacts, tickets), so nothing in it may be a credential. `ascii_only` is for a
    terminal that cannot show the glyphs (an SSH session in a latin-1 or C locale)."""
    if fmt == "json":
        return "".join(json_chunks(plan))
    if fmt == "markdown":
        out = scrub_text(markdown(plan))
        return to_ascii(out) if ascii_only else out
    if fmt == "sarif":
        return json.dumps(scrub(sarif(plan)), indent=2) + "\n"
    return scrub_text(text(plan, ascii_only=ascii_only))


def json_chunks(plan: Plan) -> Iterator[str]:
    """The JSON plan, one step at a time: each finding and change is scrubbed and encoded on
    its own, from a view of the plan (no copy of the change bodies), so the plan is never held
    twice. The plan's own keys are indented; each finding and change is one compact line (at
    50,000 resources, indenting every body took longer than planning)."""
    data = plan.to_dict(copy=False, steps=False)  # each step's view is made when it is written
    yield "{"
    for n, key in enumerate(data):
        yield ("," if n else "") + f"\n  {json.dumps(key)}: "
        if key != "steps":
            yield json.dumps(scrub_for_output(data[key]), indent=2).replace("\n", "\n  ")
            continue
        steps = plan.steps
        yield "[" if steps else "[]"
        for i, result in enumerate(steps):
            # the step without its findings and changes: those are viewed one at a time below,
            # not all of a 50,000-resource step's at once
            step = replace(result, findings=[], changes=[]).to_dict(copy=False)
            head = {k: v for k, v in step.items() if k not in ("findings", "changes")}
            yield ("," if i else "") + "\n    " + json.dumps(scrub_for_output(head))[:-1]
            parts: tuple[tuple[str, list[Any]], ...] = (("findings", result.findings), ("changes", result.changes))
            for part, objs in parts:
                yield f", {json.dumps(part)}: [" + ("" if objs else "]")
                for j, obj in enumerate(objs):
                    yield ("," if j else "") + "\n      " + json.dumps(scrub_for_output(obj.to_dict(copy=False)))
                if objs:
                    yield "\n    ]"
            yield "}"
        if steps:
            yield "\n  ]"
    yield "\n}\n"


# What the reports' own glyphs become in ASCII; anything else outside ASCII (a name from the
# estate) becomes "?".
ASCII_FOR = {"→": "->", "—": "-", "–": "-", "·": ".", "…": "...", "✔": "+", "✘": "x", "≥": ">=", "≤": "<="}


def to_ascii(out: str) -> str:
    for glyph, plain in ASCII_FOR.items():
        out = out.replace(glyph, plain)
    return out.encode("ascii", "replace").decode()


def _short(resource_id: str) -> str:
    return plandiff.target(resource_id)


def _value(v: Any) -> str:
    """A value as ARM spells it (`null`, `true`, `"AAD"`), secrets redacted."""
    return literal(scrub(v))


# What a failing finding's remediation means for a reader.
FIX_WORD = {"auto": "auto fix", "create": "create", "manual": "manual fix"}


def skipped_lines(plan: Plan, where: str = "above") -> list[str]:
    """What the plan does not propose, and what apply will leave out unless told, and why."""
    findings = [f for s in plan.steps for f in s.findings if not f.waiver]
    by_hand = sum(1 for f in findings if f.status == "fail" and f.remediation == "manual")
    manual = sum(1 for f in findings if f.status == "manual")
    errors = sum(1 for f in findings if f.status == "error")
    changes = plan.changes()
    disruptive = sum(1 for c in changes if c.disruptive)
    billable = sum(1 for c in changes if c.billable)
    out = []
    if by_hand or manual or errors:
        parts = [f"{by_hand} failing finding(s) need a person to fix them (the instruction is {where})"] \
            if by_hand else []
        if manual:
            parts.append(f"{manual} finding(s) need a person to judge them (status manual: what to look at is {where})")
        if errors:
            parts.append(f"{errors} could not be evaluated (status error: what to fix is {where})")
        out.append("Not proposed: " + "; ".join(parts) + ".")
    held = [f"{disruptive} disruptive change(s) unless --allow-disruptive"] if disruptive else []
    if billable:
        held.append(f"{billable} billable change(s) unless --allow-cost")
    if held:
        out.append("Apply skips " + " and ".join(held) + ", and whatever depends on them.")
    waiting = [c for c in changes if any(v in ("", None) for v in c.params.values())]
    if waiting:  # no default could be chosen (e.g. which Key Vault key): a person names it
        names = sorted({k for c in waiting for k, v in c.params.items() if v in ("", None)})
        out.append(f"Apply skips {len(waiting)} change(s) waiting for a parameter ({', '.join(names)}) until "
                   f"--param CHANGE.NAME=VALUE sets it, e.g. --param {waiting[0].id}.{names[0]}=….")
    return out


def text(plan: Plan, *, ascii_only: bool = False) -> str:
    glyph = ASCII_GLYPH if ascii_only else GLYPH
    arrow = "->" if ascii_only else "→"
    s = plan.summary()
    lines = [f"ztwizard plan — {plan.target.get('kind', '?')} {plan.target.get('endpoint', '')}",
             f"{s['steps']} steps: {s['pass']} pass, {s['fail']} fail, {s['manual']} manual, {s['error']} error, "
             f"{s['not_applicable']} n/a; {s['changes']} changes proposed"
             + (f"; {s['waived']} findings waived" if s.get("waived") else ""), ""]
    lines += [f"note: {n['message']}" for n in plan.notes] + ([""] if plan.notes else [])
    article = None
    for step in plan.steps:
        if step.article != article:
            article = step.article
            lines.append(f"== {ARTICLES.get(article, article)} ==")
        c = step.counts()
        lines.append(f"{glyph[step.status]} {step.id:<10} {step.title}  "
                     f"[{c['fail']} fail, {c['manual']} manual, {c['pass']} pass]")
        for f in step.findings:
            if f.status in ("pass", "not_applicable"):
                continue
            if f.waiver:  # shown, so that an accepted risk stays visible, but apart
                lines.append(f"    ~ {f.check:<11} {_short(f.resource_id)}  (waived: {_waiver_text(f)})")
                continue
            fix = f"  [{FIX_WORD[f.remediation]}]" if f.status == "fail" else ""
            lines.append(f"    {glyph[f.status]} {f.check:<11} {_short(f.resource_id)}{fix}")
            lines.append(f"        {f.message}")
        if step.changes:
            lines.append("  changes:")
        for ch in step.changes:
            lines.append(f"    {plandiff.header(ch)}")
            lines += [f"        {row}" for row in plandiff.lines(ch, arrow=arrow)]
            if ch.one_way:
                lines.append(f"        one-way: {ch.one_way}")
            if ch.instead_of:
                lines.append(f"        stands in for {ch.instead_of}: not sent when that change is applied")
        lines.append("")
    lines.append(plandiff.summary_line(plan.changes()))
    lines += skipped_lines(plan)
    out = "\n".join(lines) + "\n"
    return to_ascii(out) if ascii_only else out  # names from the estate may be outside ASCII


def _waiver_text(f: Finding) -> str:
    w = f.waiver or {}
    until = f", until {w['expires']}" if w.get("expires") else ""
    by = f", by {w['by']}" if w.get("by") else ""
    return f"{w.get('id')}{until}{by}: {w.get('reason')}"


def markdown(plan: Plan) -> str:
    s = plan.summary()
    target = plan.target
    subs = ", ".join(f"`{sub}`" for sub in target.get("subscriptions", [])) or "none"
    where = {"sandbox": "the sandbox", "azure": "Azure"}.get(str(target.get("kind", "")), str(target.get("kind", "?")))
    endpoint = str(target.get("endpoint") or "")
    if endpoint.startswith("file "):  # target.py's label of an estate audit
        where, endpoint = "an estate file", endpoint[len("file "):]
    if endpoint:  # a URL, or a label such as "(in-process)"
        where += f" at `{endpoint}`" if "://" in endpoint else f" {endpoint}" if endpoint.startswith("(") \
            else f" ({endpoint})"
    skipped = skipped_lines(plan, where="below")
    out = [f"# Zero Trust hardening plan ({target.get('kind', '?')})", "",
           f"Target: {where}; subscriptions: {subs}. Generated {plan.generated_at}.", "",
           f"**{s['steps']} steps**: {s['pass']} pass · {s['fail']} fail · {s['manual']} manual · "
           f"{s['error']} error · {s['not_applicable']} not applicable · **{s['changes']} changes proposed**", "",
           f"**{plandiff.summary_line(plan.changes())}**", ""]
    out += [*(f"- {line}" for line in skipped), ""] if skipped else []
    article = None
    for step in plan.steps:
        if step.article != article:
            article = step.article
            out += [f"## {ARTICLES.get(article, article)}", ""]
        out += [f"### {step.id}: {step.title} — {step.status}", "", STEP_BY_ID[step.id].why, ""]
        bad = [f for f in step.findings if f.status not in ("pass", "not_applicable") and not f.waiver]
        if bad:
            out += ["| Check | Resource | Status | Fix | Actual | Expected | What to do |",
                    "|---|---|---|---|---|---|---|"]
            out += [f"| {f.check} | {_md_target(f.resource_id)} | {f.status} | {_md_fix(f)} | `{_md(f.actual)}` | "
                    f"`{_md(f.expected)}` | {_md_text(f.message)} |" for f in bad]
            out.append("")
        passed = sum(1 for f in step.findings if f.status == "pass")
        if passed:
            out += [f"{passed} finding(s) already pass.", ""]
        if step.changes:
            out += ["Proposed changes:", ""]
            for ch in step.changes:
                flags = "".join([" **disruptive**" if ch.disruptive else "", " **billable**" if ch.billable else "",
                                 " **one-way**" if ch.one_way else ""])
                out.append(f"- **{plandiff.marker(ch)} {ch.action}** {_md_target(ch.resource_id)}: "
                           f"{ch.title or ch.check}{flags}")
                out.append(f"  - Risk: {(ch.risk or 'low').rstrip('.')}.")
                if ch.one_way:
                    out.append(f"  - One-way: {ch.one_way.rstrip('.')}; undo cannot take it back.")
                out.append(f"  - Request: `{ch.method} {ch.resource_id}?api-version={ch.api_version}`")
                out += ["", "  ```diff", *[f"  {row}" for row in plandiff.lines(ch)], "  ```", ""]
            out.append("")
    out += _markdown_review(plan)
    return "\n".join(out).rstrip("\n") + "\n"


def _md_target(resource_id: str) -> str:
    """`vnet-hub/GatewaySubnet` (subnets, rg-hub): the name in code, what and where in words."""
    label = _short(resource_id)
    name, sep, rest = label.partition(" (")
    return f"`{name}` ({rest}" if sep else f"`{label}`"


def _md_fix(f: Finding) -> str:
    """Who fixes a failure; a finding nobody can judge from ARM has no fix yet, only a look."""
    return FIX_WORD[f.remediation] if f.status == "fail" else "—"


def _md_text(v: str) -> str:
    return (v or "").replace("|", "\\|").replace("\n", " ")


def _markdown_review(plan: Plan) -> list[str]:
    """Waived findings and the plan's notes, each in a section of its own."""
    out: list[str] = []
    waived = [f for s in plan.steps for f in s.findings if f.waiver]
    if waived:
        out += ["## Waivers", "", "Accepted risks: these findings count toward no status and get no change.", "",
                "| Waiver | Check | Resource | Status | Reason | Expires | By |", "|---|---|---|---|---|---|---|"]
        out += [f"| {w['id']} | {f.check} | `{_short(f.resource_id)}` | {f.status} | {_md_text(w['reason'])} "
                f"| {w.get('expires') or 'never'} | {_md_text(w.get('by') or '—')} |"
                for f in waived for w in [f.waiver or {}]]
        out.append("")
    if plan.notes:
        out += ["## Notes", ""] + [f"- {_md_text(n['message'])}" for n in plan.notes] + [""]
    return out


def _md(v: Any) -> str:
    """A value for a table cell, inside backticks (a backtick in it would end the span)."""
    return _value(v).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def sarif(plan: Plan) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per check that ran, one result per finding that does not pass."""
    ran = []
    for step in plan.steps:
        for check in STEP_BY_ID[step.id].checks:
            if any(f.check == check.id for f in step.findings):
                ran.append(check)
    index = {c.id: i for i, c in enumerate(ran)}
    rules = [{
        "id": c.id,
        "name": c.id.replace("-", "_"),
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": f"{c.title}. Remediation: {FIX_WORD[FIXED_BY[c.remediation]]}."
                                    + (f" Risk: {c.risk}" if c.risk else "")},
        # a failure is an error whoever fixes it; each result's level follows its own status
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["security", "zero-trust", c.id.split("-")[0]],
                       **({"mcsb": c.mcsb} if c.mcsb else {})},
    } for c in ran]
    results = [_sarif_result(f, index) for s in plan.steps for f in s.findings
               if f.status in ("fail", "manual") and f.check in index]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ztwizard", "version": __version__, "rules": rules}},
            "results": results,
            "properties": {"target": plan.target, "generatedAt": plan.generated_at},
        }],
    }


def _sarif_result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    check = CHECK_BY_ID[f.check]
    return {
        "ruleId": f.check,
        "ruleIndex": index[f.check],
        "level": "error" if f.status == "fail" else "warning",  # manual: not judged, a person looks
        "message": {"text": f.message or check.title},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": f.resource_id.lstrip("/") or "subscription"}},
            "logicalLocations": [{"fullyQualifiedName": f.resource_id, "kind": "resource"}],
        }],
        "properties": {"status": f.status, "remediation": f.remediation, "property": f.property,
                       "actual": f.actual, "expected": f.expected},
        # A waived finding is reported as suppressed, so dashboards show it as accepted, not open.
        **({"suppressions": [{"kind": "external", "status": "accepted", "justification": f.waiver["reason"],
                              "properties": {"waiver": f.waiver["id"], "expires": f.waiver.get("expires"),
                                             "by": f.waiver.get("by")}}]} if f.waiver else {}),
    }
