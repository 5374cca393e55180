"""`ztwizard export` (the hardening as Azure Policy or as a deployment template) and
`ztwizard plan --since SESSION` (what a past session fixed that has regressed).

Export reads the catalog, the journal and the waivers file only: it never signs in. Its output
follows the files policy (files.py), and an existing file is replaced only with --force, so an
export never clobbers a template someone edited by hand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .errors import UsageError, ZtwError

FORMAT_HELP = ("policy: a management-group template with the initiative, its assignment and the waivers as "
               "exemptions; policy-bicep: the same as Bicep; arm|bicep: the end state --session applied")


def add_parser(command: Callable[[str, str], argparse.ArgumentParser], output_type: Callable[[str], str],
               step_help: str, check_help: str) -> None:
    from .export import FORMATS

    p = command("export", "export the hardening as Azure Policy or as a deployment template")
    p.add_argument("--format", choices=FORMATS, default="policy", help=FORMAT_HELP)
    p.add_argument("--session", metavar="ID", help="the session whose choices (policy) or end state (arm, bicep) "
                                                  "to export; required for arm and bicep")
    p.add_argument("--step", action="append", metavar="ID", help=step_help)
    p.add_argument("--check", action="append", metavar="ID", help=check_help)
    p.add_argument("--output", metavar="FILE", type=output_type, help="a regular file, or - for stdout")
    p.add_argument("--force", action="store_true", help="replace --output FILE if it exists")


def _refuse_existing(output: str | None, force: bool) -> None:
    """An existing regular file is replaced only with --force (checked before any work)."""
    if output in (None, "-") or force:
        return
    from .files import output_target

    dest = output_target(output)
    if dest.exists():
        raise UsageError(f"Output file {output} exists; export does not replace a file unless told to.",
                         "Pass --force to replace it, or name another file.")


def _checks(step_ids: list[str], check_ids: list[str]) -> list[Any]:
    from .engine import selected_steps
    from .export.initiative import CheckInfo

    out = []
    for step, ids in selected_steps(step_ids, check_ids):
        for c in step.checks:
            if c.id in ids:
                out.append(CheckInfo(c.id, step.id, c.title, c.remediation))
    return out


def cmd_export(args: argparse.Namespace, make_core: Callable[..., Any], write: Callable[[str, str | None], None]
               ) -> int:
    from .engine import validate_selection
    from .export import bicep, initiative, template
    from .waivers import today_utc

    validate_selection(args.step or [], args.check or [])
    _refuse_existing(args.output, args.force)
    kind = args.format
    if kind in ("arm", "bicep") and not args.session:
        raise UsageError(f"--format {kind} exports what a session applied, and no --session was given.",
                         "Pass --session ID (`ztwizard sessions` lists them).")
    if kind in ("arm", "bicep") and (args.step or args.check):
        raise UsageError(f"--format {kind} exports a session's whole end state; --step and --check do not apply.",
                         "Drop --step/--check, or use --format policy to export selected checks.")
    with make_core(args, lazy=True) as core:  # the journal and the waivers only: never signs in
        records: list[Any] = []
        sid = ""
        info = None
        if args.session:
            sid = core.pick_session(args.session)
            info = next(s for s in core.sessions() if s.id == sid)
            records = core.session_changes(sid)
        if kind in ("policy", "policy-bicep"):
            from . import waivers as W

            accepted = W.load(core.waivers_file, must_exist=core.waivers_required) if core.waivers_file else []
            subs = list(args.subscription or []) or list(info.subscriptions if info else [])
            doc = initiative.build(_checks(args.step or [], args.check or []),
                                   choices=initiative.session_choices(records), waivers=accepted,
                                   session_id=sid, subscriptions=subs, today=today_utc())
            cov = doc["metadata"]["coverage"]
            summary = (f"{len(cov['builtin'])} check(s) as built-in definitions, {len(cov['custom'])} as custom "
                       f"definitions, {len(cov['coveredBy'])} covered by another check's, "
                       f"{len(cov['notExpressible'])} not expressible as policy")
        else:
            subs = list(args.subscription or [])
            if len(subs) > 1:
                raise UsageError("A template deploys to one subscription; -s was given more than once.",
                                 "Pass one -s SUBSCRIPTION.")
            doc = template.build(records, session_id=sid, subscription=subs[0] if subs else None,
                                 resource_groups=list(args.resource_group or []))
            summary = f"{template.resource_count(doc)} resource(s) from session {sid}"
    if kind in ("policy", "arm"):
        text = json.dumps(doc, indent=2) + "\n"
    else:
        header = (f"Generated by ztwizard from session {sid}." if sid else "Generated by ztwizard.")
        text = bicep.render(doc, header=header)
    write(text, args.output)
    if args.output not in (None, "-"):
        sys.stderr.write(f"Exported {summary} to {args.output}.\n")
    return 0


def cmd_plan_since(args: argparse.Namespace, make_core: Callable[..., Any], write: Callable[[str, str | None], None],
                   ascii_only: bool) -> int:
    from . import regressions
    from .engine import validate_selection

    validate_selection(args.step or [], args.check or [])
    if args.format not in ("text", "json"):
        raise UsageError(f"plan --since writes text or json, not {args.format}.", "Pass --format text or --format json.")
    if args.out:
        raise UsageError("plan --since reports regressions; it does not save an appliable plan (--out).",
                         "Run `ztwizard plan --out PLANFILE` to save the plan that fixes them.")
    with make_core(args) as core:
        report = regressions.find(core, args.since, args.step or [], args.check or [])
    if args.format == "json":
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    else:
        text = "\n".join(report.lines(arrow="->" if ascii_only else "→")) + "\n"
        if ascii_only:
            from .report import to_ascii

            text = to_ascii(text)
    write(text, args.output)
    if args.detailed_exitcode:
        if report.errors:
            raise ZtwError(f"{len(report.errors)} check(s) could not be evaluated (status error, listed above).",
                           hint="Fix what each says (usually a missing read permission), then plan again.")
        return 2 if report.regressions else 0
    return 0
