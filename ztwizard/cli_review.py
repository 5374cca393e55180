"""The reviewer's commands: waivers (`waive`, `waivers`, `unwaive`) and applying a saved plan
(`apply PLANFILE`). The plan itself is narrowed to -g and waived in `Core.inspect`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import waivers as W
from .errors import UsageError, ZtwError


@dataclass(frozen=True)
class Terminal:
    """What these commands borrow from the command line, handed in by cli.py (so that this
    module never imports it)."""

    state_dir: Callable[[argparse.Namespace], Path]
    make_gateway: Callable[[argparse.Namespace], Any]
    dry_run: Callable[[argparse.Namespace], bool]
    interactive: Callable[[], bool]
    ask: Callable[[str], bool]
    describe: Callable[[Any, bool, bool], str]


def waivers_path(args: argparse.Namespace, state_dir: Path) -> tuple[Path, bool]:
    """The waivers file and whether it was named explicitly (--waivers)."""
    explicit = getattr(args, "waivers", None)
    if explicit:
        return Path(explicit).expanduser(), True
    return W.default_path(state_dir), False


def load_waivers(args: argparse.Namespace, term: Terminal) -> list[W.Waiver]:
    path, explicit = waivers_path(args, term.state_dir(args))
    return W.load(path, must_exist=explicit)


# ---- waive / waivers / unwaive -----------------------------------------------------------------

def cmd_waive(args: argparse.Namespace, term: Terminal) -> int:
    # --resource-group and --subscription are the global options: the waiver's scope here.
    subs, groups = list(args.subscription or []), list(args.resource_group or [])
    if len(subs) > 1 or len(groups) > 1:
        raise UsageError("A waiver names at most one subscription and one resource group.",
                         hint="Make one waiver per resource group or subscription.")
    waiver = W.new_waiver(args.check_id, reason=args.reason, resource=args.resource or "",
                          resource_group=groups[0] if groups else "", subscription=subs[0] if subs else "",
                          expires=args.expires, by=args.by or "")
    path, _ = waivers_path(args, term.state_dir(args))
    W.add(path, waiver)
    until = f" until {waiver.expires.isoformat()}" if waiver.expires else " (no expiry)"
    print(f"Waived {waiver.check} on {waiver.scope()}{until}: {waiver.id} in {path}.")
    return 0


def cmd_waivers(args: argparse.Namespace, term: Terminal) -> int:
    today = W.today_utc()
    path, _ = waivers_path(args, term.state_dir(args))
    items = load_waivers(args, term)
    if args.format == "json":
        sys.stdout.write(json.dumps([w.to_dict(today) for w in items], indent=2) + "\n")
        return 0
    if not items:
        print(f"No waivers in {path}.")
        return 0
    print(f"{'ID':11} {'CHECK':11} {'EXPIRES':18} {'BY':12} SCOPE / REASON")
    for w in items:
        until = w.expires.isoformat() if w.expires else "never"
        if w.expired(today):
            until += " EXPIRED"
        print(f"{w.id:11} {w.check:11} {until:18} {(w.by or '-'):12} {w.scope()}")
        print(f"{'':55} {w.reason}")
    return 0


def cmd_unwaive(args: argparse.Namespace, term: Terminal) -> int:
    path, _ = waivers_path(args, term.state_dir(args))
    gone = W.remove(path, args.waiver_id)
    print(f"Removed {gone.id} ({gone.check} on {gone.scope()}) from {path}.")
    return 0


def add_parsers(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register waive / waivers / unwaive with the main parser's `command` factory."""
    p = command("waive", "accept a risk on purpose: the finding stops counting and its fix is not proposed")
    p.epilog = ("Scope: --resource ID, or --resource-group NAME (optionally with --subscription ID), or "
                "--subscription ID; the last two are the global -g / -s options.")
    p.add_argument("check_id", metavar="CHECK", help="check id (storage-1b, hub-3a, …)")
    p.add_argument("--resource", metavar="ID", help="one resource (and what lies under it)")
    # --resource-group NAME / --subscription ID are the global -g / -s options, read as the scope.
    p.add_argument("--reason", required=True, metavar="TEXT", help="why the risk is accepted")
    p.add_argument("--expires", metavar="YYYY-MM-DD", help="the last day the waiver applies")
    p.add_argument("--by", metavar="NAME", help="who accepted the risk")
    p = command("waivers", "list the waivers")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p = command("unwaive", "remove a waiver")
    p.add_argument("waiver_id", metavar="ID")


# ---- apply PLANFILE ----------------------------------------------------------------------------

def cmd_apply_planfile(args: argparse.Namespace, term: Terminal) -> int:
    """Apply exactly the changes of a saved plan; drifted ones are refused (exit 1)."""
    from . import journal as J
    from . import planfile
    from .apply import apply_changes, refuse_if_read_only, start_session
    from .journal import Journal
    from .outcomes import BUSY_HINT, ApplyInterrupted, Outcome
    from .resume import unfinished_note

    saved = planfile.load(args.planfile)
    if args.step or args.check:
        raise UsageError("A saved plan is applied whole; --step and --check cannot narrow it.",
                         hint="Make a plan with the selection you want: `ztwizard plan --step … --out FILE`.")
    if term.dry_run(args):
        raise UsageError("--dry-run is set: apply refused; nothing was changed.", hint="Drop --dry-run to apply.")
    if not args.yes and not term.interactive():
        raise UsageError("apply asks for confirmation, and there is no terminal to ask at; nothing was changed.",
                         hint="Pass --yes to apply without asking (scripts, CI).")
    given_subs, given_groups = list(args.subscription or []), list(args.resource_group or [])
    args.subscription, args.resource_group = list(saved.target["subscriptions"]), \
        list(saved.target.get("resource_groups") or [])
    gateway = term.make_gateway(args)
    refuse_if_read_only(gateway, False, "apply")
    planfile.check_target(saved, gateway, given_subs, given_groups)
    if not saved.changes:
        print(f"Nothing to apply: {saved.path} proposes no change.")
        return 0
    with Journal(term.state_dir(args)) as journal:
        left = journal.open_session_on(gateway.target.endpoint or "")
        if left is not None:
            sys.stderr.write(unfinished_note(left.id, sum(left.counts.values()), left.in_flight) + "\n")
        refused = planfile.drift(saved, gateway)
        done = {cid: why for cid, why in refused.items() if why == planfile.ALREADY}
        refused = {cid: why for cid, why in refused.items() if cid not in done}
        for cid in saved.redacted:
            refused.setdefault(cid, "held a secret that was not saved in the plan file; make a new plan")
        blocked = planfile.blocked_by(saved, refused)
        held = {**done, **refused, **blocked}
        confirm = None
        if not args.yes:
            def confirm(step_id: str, step_changes: list[Any]) -> bool:
                print(f"\n{step_id} (from {saved.path}):")
                for c in step_changes:
                    print(term.describe(c, args.allow_disruptive, args.allow_cost))
                return term.ask(f"Apply these {len(step_changes)} change(s) of {step_id}?")
        sid = start_session(journal, gateway, saved.changes, subscriptions=saved.target["subscriptions"],
                            resource_groups=saved.target.get("resource_groups") or [],
                            selection={**saved.selection, "planfile": str(saved.path),
                                       "allow_disruptive": args.allow_disruptive, "allow_cost": args.allow_cost})
        early = []
        for ch in saved.changes:
            if ch.id in held:
                journal.update_change(sid, ch.id, state=J.SKIPPED, note=held[ch.id], event=held[ch.id],
                                      set_flags={"in_place": True} if ch.id in done else None)
                early.append(Outcome(ch.id, ch.check, saved.steps[ch.id], ch.resource_id, ch.title, "skipped",
                                     held[ch.id]))
        try:
            report = apply_changes(gateway, journal, sid, [c for c in saved.changes if c.id not in held],
                                   allow_disruptive=args.allow_disruptive, allow_cost=args.allow_cost,
                                   confirm=confirm, parallel=args.parallel)
        except ApplyInterrupted as exc:
            exc.report.outcomes[:0] = early
            print("\n".join(exc.report.lines()))
            raise
        report.outcomes[:0] = early
    print("\n".join(report.lines()))
    print(f"Undo with `ztwizard undo --session {sid}`.")
    if report.failed:
        because = report.failed_because()
        raise ZtwError(f"{len(report.failed)} change(s) failed{because}; {len(report.applied)} applied and "
                       f"{len(report.skipped)} skipped (listed above); nothing else was changed.",
                       hint=f"{BUSY_HINT}." if because else "Fix the cause ARM gave, then make and apply a new plan.")
    if refused:
        names = ", ".join(f"{c.check} on {c.resource_id.rsplit('/', 1)[-1]}" for c in saved.changes
                          if c.id in refused)
        raise ZtwError(f"{len(refused)} change(s) refused because their resource moved since the plan was saved "
                       f"({names}); {len(report.applied)} applied, the rest as listed above.",
                       hint="Make a new plan (`ztwizard plan --out FILE`), review it, and apply that.")
    return 0
