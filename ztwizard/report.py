"""The plan rendered for people (text, markdown) and machines (json, SARIF 2.1.0)."""

from __future__ import annotations

import json
from typing import Any

from . import __version__
from .engine import Plan
from .model import Finding
from .redact import scrub, scrub_text
from .resource_id import parse
from .steps import ARTICLES, CHECK_BY_ID, STEP_BY_ID

GLYPH = {"pass": "✔", "fail": "✘", "manual": "!", "error": "?", "not_applicable": "·"}
ASCII_GLYPH = {"pass": "+", "fail": "x", "manual": "!", "error": "?", "not_applicable": "."}


def render(plan: Plan, fmt: str, *, ascii_only: bool = False) -> str:
    """The plan in `fmt`, with every secret the estate holds redacted (redact.py): a plan is
    shared (CI artefacts, tickets), so nothing in it may be a credential."""
    if fmt == "json":
        return json.dumps(scrub(plan.to_dict()), indent=2, sort_keys=False) + "\n"
    if fmt == "markdown":
        return scrub_text(markdown(plan))
    if fmt == "sarif":
        return json.dumps(scrub(sarif(plan)), indent=2) + "\n"
    return scrub_text(text(plan, ascii_only=ascii_only))


def _short(resource_id: str) -> str:
    p = parse(resource_id) if resource_id else None
    if not p or not p.name:
        return resource_id or "(scope)"
    where = p.resource_group or (f"sub {p.subscription[:8]}" if p.subscription else "")
    return f"{p.name} ({p.type.rsplit('/', 1)[-1]}{', ' + where if where else ''})"


def _value(v: Any) -> str:
    v = scrub(v)
    return json.dumps(v) if not isinstance(v, str) else v


def text(plan: Plan, *, ascii_only: bool = False) -> str:
    glyph = ASCII_GLYPH if ascii_only else GLYPH
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
            lines.append(f"    {glyph[f.status]} {f.check:<11} {_short(f.resource_id)}")
            lines.append(f"        {f.message}")
        for ch in step.changes:
            flags = "".join([" [disruptive]" if ch.disruptive else "", " [billable]" if ch.billable else ""])
            lines.append(f"    → {ch.method} {_short(ch.resource_id)}: {ch.title or ch.check}{flags}")
        lines.append("")
    out = "\n".join(lines)
    if ascii_only:  # arrows, dashes and names from the estate may be outside ASCII
        out = out.replace("→", "->").replace("—", "-").encode("ascii", "replace").decode()
    return out


def _waiver_text(f: Finding) -> str:
    w = f.waiver or {}
    until = f", until {w['expires']}" if w.get("expires") else ""
    by = f", by {w['by']}" if w.get("by") else ""
    return f"{w.get('id')}{until}{by}: {w.get('reason')}"


def markdown(plan: Plan) -> str:
    s = plan.summary()
    out = [f"# Zero Trust hardening plan ({plan.target.get('kind', '?')})", "",
           f"Generated {plan.generated_at} for {plan.target.get('endpoint', '')}, "
           f"subscriptions: {', '.join(plan.target.get('subscriptions', [])) or '—'}.", "",
           f"**{s['steps']} steps**: {s['pass']} pass · {s['fail']} fail · {s['manual']} manual · "
           f"{s['error']} error · {s['not_applicable']} not applicable · **{s['changes']} changes proposed**", ""]
    article = None
    for step in plan.steps:
        if step.article != article:
            article = step.article
            out += [f"## {ARTICLES.get(article, article)}", ""]
        out += [f"### {step.id}: {step.title} — {step.status}", "", STEP_BY_ID[step.id].why, ""]
        bad = [f for f in step.findings if f.status not in ("pass", "not_applicable") and not f.waiver]
        if bad:
            out += ["| Check | Resource | Status | Actual | Expected | What to do |", "|---|---|---|---|---|---|"]
            out += [f"| {f.check} | `{_short(f.resource_id)}` | {f.status} | {_md(f.actual)} | {_md(f.expected)} "
                    f"| {_md(f.message)} |" for f in bad]
            out.append("")
        passed = sum(1 for f in step.findings if f.status == "pass")
        if passed:
            out += [f"{passed} finding(s) already pass.", ""]
        if step.changes:
            out += ["Proposed changes:", ""]
            for ch in step.changes:
                flags = "".join([" **disruptive**" if ch.disruptive else "", " **billable**" if ch.billable else ""])
                out.append(f"- `{ch.method} {ch.resource_id}?api-version={ch.api_version}` — "
                           f"{ch.title or ch.check}{flags}. Risk: {ch.risk or 'low'}")
            out.append("")
    out += _markdown_review(plan)
    return "\n".join(out) + "\n"


def _markdown_review(plan: Plan) -> list[str]:
    """Waived findings and the plan's notes, each in a section of its own."""
    out: list[str] = []
    waived = [f for s in plan.steps for f in s.findings if f.waiver]
    if waived:
        out += ["## Waivers", "", "Accepted risks: these findings count toward no status and get no change.", "",
                "| Waiver | Check | Resource | Status | Reason | Expires | By |", "|---|---|---|---|---|---|---|"]
        out += [f"| {w['id']} | {f.check} | `{_short(f.resource_id)}` | {f.status} | {_md(w['reason'])} "
                f"| {w.get('expires') or 'never'} | {_md(w.get('by'))} |"
                for f in waived for w in [f.waiver or {}]]
        out.append("")
    if plan.notes:
        out += ["## Notes", ""] + [f"- {_md(n['message'])}" for n in plan.notes] + [""]
    return out


def _md(v: Any) -> str:
    if v is None:
        return "—"
    return _value(v).replace("|", "\\|").replace("\n", " ")


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
        "fullDescription": {"text": f"{c.title}. Remediation: {c.remediation}." + (f" Risk: {c.risk}" if c.risk else "")},
        "defaultConfiguration": {"level": "error" if c.remediation != "advisory" else "warning"},
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
        "level": "error" if f.status == "fail" else "warning",
        "message": {"text": f.message or check.title},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": f.resource_id.lstrip("/") or "subscription"}},
            "logicalLocations": [{"fullyQualifiedName": f.resource_id, "kind": "resource"}],
        }],
        "properties": {"property": f.property, "actual": f.actual, "expected": f.expected},
        # A waived finding is reported as suppressed, so dashboards show it as accepted, not open.
        **({"suppressions": [{"kind": "external", "status": "accepted", "justification": f.waiver["reason"],
                              "properties": {"waiver": f.waiver["id"], "expires": f.waiver.get("expires"),
                                             "by": f.waiver.get("by")}}]} if f.waiver else {}),
    }
