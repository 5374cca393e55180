"""The `ztwizard` command line (product.md §3). Errors are one sentence and a hint, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, cli_review, inputs
from .errors import UsageError, ZtwError, from_os_error, user_error

if TYPE_CHECKING:
    from .core import Core

STEP_HELP = "step id (storage-1 … hub-4); repeatable"
CHECK_HELP = "check id (storage-1b, hub-3a, …); repeatable"


# ---- shared plumbing ---------------------------------------------------------------------------

def state_dir(args: argparse.Namespace) -> Path:
    raw = args.state_dir or os.environ.get("ZTWIZARD_STATE_DIR")
    if not raw:
        import platformdirs

        raw = platformdirs.user_state_dir("ztwizard")
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"State dir {path} is not a directory.", hint="Pass --state-dir DIR or set ZTWIZARD_STATE_DIR.")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise from_os_error(e, "The state dir") from None
    return path


def make_target(args: argparse.Namespace) -> Any:
    from .engine import validate_management_groups, validate_resource_groups, validate_subscriptions
    from .target import azure_target, estate_target, sandbox_target

    subs = list(args.subscription or [])
    validate_subscriptions(subs)
    groups = list(getattr(args, "management_group", None) or [])
    validate_management_groups(groups)
    validate_resource_groups(args.resource_group or [])
    if args.estate:
        if args.sandbox:
            raise UsageError("--estate and --sandbox cannot be combined.",
                             hint="--estate audits a file offline; --sandbox talks to the sandbox.")
        if groups:
            raise UsageError("--management-group needs Azure or the sandbox: an estate file has no management groups.",
                             hint="Narrow an estate file with -s and -g.")
        target = estate_target(args.estate)
    elif args.sandbox:
        target = sandbox_target(state_dir(args))
    else:
        target = azure_target(args.cloud, args.endpoint, args.ca_bundle, auth=getattr(args, "auth", None) or "default",
                              auth_timeout=getattr(args, "auth_timeout", None))
    target.subscriptions = subs
    target.resource_groups = list(args.resource_group or [])
    target.management_groups = groups
    return target


def make_gateway(args: argparse.Namespace) -> Any:
    from .gateway import Gateway

    target = make_target(args)
    if target.kind == "estate":  # offline: the file goes straight into the inventory
        from .offline import EstateGateway

        return EstateGateway(target)
    target.sign_in()  # no credential, or a refused one: one sentence now, within --auth-timeout
    return Gateway(target, lro_timeout=getattr(args, "lro_timeout", None))


def make_core(args: argparse.Namespace, *, lazy: bool = False) -> Core:
    """The application core for these arguments: target, scope, state dir, dry-run, apply flags.
    `lazy` builds the gateway only when a command first needs ARM (sessions never does)."""
    from .core import Core

    gateway = (lambda: make_gateway(args)) if lazy else make_gateway(args)
    waivers, named = cli_review.waivers_path(args, state_dir(args))
    return Core(gateway, state_dir=state_dir(args), dry_run=dry_run(args), waivers_file=waivers,
                waivers_required=named,
                allow_disruptive=bool(getattr(args, "allow_disruptive", False)),
                allow_cost=bool(getattr(args, "allow_cost", False)))


def dry_run(args: argparse.Namespace) -> bool:
    return bool(args.dry_run or args.estate)


def write_output(text: str | Iterable[str], output: str | None) -> None:
    """stdout, or FILE written atomically: a failed run leaves no partial file (files.write_output)."""
    from .files import write_output as write

    write(output, text)


# ---- what the terminal is told ----------------------------------------------------------------

def invocation_flags(args: argparse.Namespace) -> list[tuple[str, ...]]:
    """The flags that chose this run's target, scope and state, each with its value: a command
    suggested in a hint needs them again to reach the same sandbox, estate, endpoint and journal.
    Modes (--dry-run, --debug) are left out: a hint that says "apply" must not carry --dry-run."""
    flags: list[tuple[str, ...]] = []
    if getattr(args, "sandbox", False):
        flags.append(("--sandbox",))
    for flag, attr in (("--estate", "estate"), ("--endpoint", "endpoint"), ("--ca-bundle", "ca_bundle")):
        if getattr(args, attr, None):
            flags.append((flag, getattr(args, attr)))
    if getattr(args, "cloud", None) not in (None, "AzureCloud"):
        flags.append(("--cloud", args.cloud))
    if getattr(args, "auth", None) not in (None, "default"):
        flags.append(("--auth", args.auth))
    if getattr(args, "state_dir", None):
        flags.append(("--state-dir", args.state_dir))
    flags += [("--management-group", mg) for mg in getattr(args, "management_group", None) or []]
    flags += [("-s", sub) for sub in getattr(args, "subscription", None) or []]
    flags += [("-g", rg) for rg in getattr(args, "resource_group", None) or []]
    return flags


_COMMAND = re.compile(r"`ztwizard(?P<rest>(?: [^`]*)?)`")


def with_flags(text: str, args: argparse.Namespace | None) -> str:
    """Every `ztwizard …` command quoted in `text`, with this invocation's target and state flags,
    so that pasting it reaches the same target: "`ztwizard --sandbox --state-dir D undo`"."""
    if args is None:
        return text
    flags = invocation_flags(args)

    def fill(m: re.Match[str]) -> str:
        rest = m.group("rest")
        words = rest.split()
        extra = [f for f in flags
                 if (words[:1] != ["sandbox"] or f[0] == "--state-dir")  # sandbox serve|reset|export
                 and f[0] not in words]  # a flag the hint already names stays as written
        if not extra:
            return m.group(0)
        return "`ztwizard " + " ".join(shlex.quote(part) for f in extra for part in f) + rest + "`"

    return _COMMAND.sub(fill, text)


def say(text: str, args: argparse.Namespace | None = None) -> None:
    """A line for the person at the terminal, its suggested commands carrying this run's flags."""
    print(with_flags(text, args))


# Glyphs the reports and diffs use; a stream that cannot encode them gets the ASCII forms.
GLYPHS = "✔✘→—·…"


def can_show_glyphs(stream: Any) -> bool:
    try:
        GLYPHS.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _degrade_unencodable_output() -> None:
    """A terminal or pipe in latin-1 or C gets '?' for a character it cannot show (a name from the
    estate), never a UnicodeEncodeError halfway through a report."""
    for stream in (sys.stdout, sys.stderr):
        if not can_show_glyphs(stream) and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a stream that cannot change its error handler
                pass


def _stdout_closed() -> bool:
    """Is the reader of stdout gone (`ztwizard steps | head -1`)? A broken pipe to ARM or the
    sandbox is an error to report, not this."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


# Exit status when the reader of stdout went away: 128 + SIGPIPE, what `yes | head` reports, so
# a `set -o pipefail` script sees ztwizard exactly as it would see cat or git.
EXIT_PIPE_CLOSED = 141


# ---- commands ----------------------------------------------------------------------------------

def cmd_steps(args: argparse.Namespace) -> int:
    from .steps import ARTICLES, STEPS

    if args.format == "json":
        data = [{"id": s.id, "article": s.article, "number": s.number, "title": s.title, "why": s.why,
                 "checks": [{"id": c.id, "title": c.title, "remediation": c.remediation,
                             "resource_type": c.resource_type, "disruptive": c.disruptive,
                             "billable": c.billable, "mcsb": c.mcsb, "policy": c.policy, "risk": c.risk}
                            for c in s.checks]} for s in STEPS]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    article = None
    for s in STEPS:
        if s.article != article:
            if article is not None:
                print()
            article = s.article
            print(f"== {ARTICLES[article]} ==")
        print(f"{s.id:<10} {s.title}")
        for c in s.checks:
            print(f"    {c.id:<11} [{c.remediation}] {c.title}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .core import ProgressEvent
    from .engine import validate_selection
    from .report import render

    validate_selection(args.step or [], args.check or [])
    if args.since:  # regressions of a past session (cli_export)
        from .cli_export import cmd_plan_since

        return cmd_plan_since(args, make_core, write_output,
                              ascii_only=args.output in (None, "-") and not can_show_glyphs(sys.stdout))
    if args.out:
        from .planfile import check_out_path

        check_out_path(args.out, args.output)
    interactive = sys.stderr.isatty() and args.format == "text" and not args.output

    def progress(ev: Any) -> None:
        if interactive and isinstance(ev, ProgressEvent):
            sys.stderr.write(f"\r\033[Kinspecting: {ev.label}")
            sys.stderr.flush()

    with make_core(args) as core:
        plan = core.inspect(args.step or [], args.check or [], on_event=progress)
        if interactive:
            sys.stderr.write("\r\033[K")
        # Glyphs only where the terminal can show them (an SSH session may be plain ASCII); files are UTF-8.
        ascii_only = args.output in (None, "-") and not can_show_glyphs(sys.stdout)
        if args.format == "json":  # streamed: a 50,000-resource plan is never one string
            from .report import json_chunks

            write_output(json_chunks(plan), args.output)
        else:
            write_output(render(plan, args.format, ascii_only=ascii_only), args.output)
        if args.out:  # the appliable plan, beside the report for people
            from .planfile import build, save

            save(Path(args.out), build(plan, core.gateway, {"steps": args.step or [], "checks": args.check or []}))
            sys.stderr.write(with_flags(f"Saved the plan ({len(plan.changes())} changes) to {args.out}; "
                                        f"apply exactly it with `ztwizard apply {shlex.quote(args.out)}`.\n", args))
    if args.detailed_exitcode:
        errors = [f for s in plan.steps for f in s.findings if f.status == "error"]
        if errors:  # Terraform's meaning: 1 is an error, never "nothing to change"
            raise ZtwError(f"{len(errors)} check(s) could not be evaluated (status error, listed in the plan).",
                           hint="Fix what each says (usually a missing read permission), then plan again.")
        return 0 if plan.compliant() else 2  # a failure a person must fix is pending work too
    return 0


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask(question: str) -> bool:
    import questionary

    answer = questionary.confirm(question, default=False).ask()
    if answer is None:  # Ctrl-C at the prompt
        raise KeyboardInterrupt
    return bool(answer)


def _held_back(c: Any, allow_disruptive: bool, allow_cost: bool) -> str:
    """Why apply will skip `c` without asking (a flag it was not given), or ""."""
    if c.disruptive and not allow_disruptive:
        return "skipped: disruptive, pass --allow-disruptive"
    if c.billable and not allow_cost:
        return "skipped: billable, pass --allow-cost"
    return ""


def describe_change(c: Any, allow_disruptive: bool, allow_cost: bool, *, ascii_only: bool = False) -> list[str]:
    """A change as the plan shows it (marker, resource, attribute rows before → after), and
    whether this apply will skip it."""
    from . import plandiff

    held = _held_back(c, allow_disruptive, allow_cost)
    lines = [f"  {plandiff.header(c)}" + (f"  ({held})" if held else ""),
             *(f"      {row}" for row in plandiff.lines(c, arrow="->" if ascii_only else "→"))]
    if ascii_only:
        from .report import to_ascii

        lines = [to_ascii(line) for line in lines]
    return lines


def _describe_change(c: Any, allow_disruptive: bool, allow_cost: bool) -> str:
    """`describe_change` as one block, for the saved-plan apply's confirmation (cli_review)."""
    return "\n".join(describe_change(c, allow_disruptive, allow_cost, ascii_only=not can_show_glyphs(sys.stdout)))


PARAM_HINT = ("Write --param CHANGE.NAME=VALUE, CHANGE being a change id, e.g. --param spoke-3a-0123456789.name=nsg-web; "
              "`ztwizard plan --format json` lists each change's id and parameters.")


def parse_params(items: list[str]) -> dict[str, dict[str, str]]:
    """`CHANGE.NAME=VALUE` items as {change id: {name: value}}; bad syntax is a usage error."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        change, dot, name = key.strip().partition(".")
        if not eq or not dot or not change or not name.strip():
            raise UsageError(f"--param {item!r} is not CHANGE.NAME=VALUE.", hint=PARAM_HINT)
        out.setdefault(change, {})[name.strip()] = value
    return out


def cmd_apply(args: argparse.Namespace) -> int:
    from .apply import ApplyInterrupted
    from .engine import validate_selection

    if args.parallel < 1:
        raise UsageError(f"--parallel must be at least 1, not {args.parallel}; nothing was changed.",
                         hint="Use --parallel 1 to apply one change at a time.")
    if args.planfile:  # a saved plan, applied exactly
        return cli_review.cmd_apply_planfile(args, terminal())
    validate_selection(args.step or [], args.check or [])
    params = parse_params(args.param or [])
    if dry_run(args):
        raise UsageError("--dry-run is set: apply refused; nothing was changed.",
                         hint="Use `ztwizard plan` to preview, or drop --dry-run (and --estate) to apply.")
    if not args.yes and not _interactive():
        raise UsageError("apply asks for confirmation, and there is no terminal to ask at; nothing was changed.",
                         hint="Pass --yes to apply without asking (scripts, CI).")
    with make_core(args) as core:
        core.lock_journal()  # taken first: a second wizard stops here
        _mention_unfinished(core, args)
        plan = core.inspect(args.step or [], args.check or [])
        for note in plan.notes:
            if note["kind"] == "subscription_skipped":
                say(f"note: {note['message']}")
        for change_id, values in params.items():
            plan = core.edit_params(change_id, values)
        changes = plan.changes()
        if not changes:
            say("Nothing to apply: every selected check passes or needs a person (see `ztwizard plan`).", args)
            return 0
        confirm = None
        if not args.yes:
            ascii_only = not can_show_glyphs(sys.stdout)

            def confirm(step_id: str, step_changes: list[Any]) -> bool:
                """The step's diff, as the plan shows it, then one question for the step."""
                print(f"\n{step_id}: {plan.step(step_id).title}")
                for c in step_changes:
                    print("\n".join(describe_change(c, args.allow_disruptive, args.allow_cost, ascii_only=ascii_only)))
                writes = [c for c in step_changes if not _held_back(c, args.allow_disruptive, args.allow_cost)]
                if not writes:  # nothing to ask about: each is skipped with its own reason
                    print(f"  (all {len(step_changes)} skipped without the flags named above)")
                    return True
                held = len(step_changes) - len(writes)
                return _ask(f"Apply these {len(writes)} change(s) of {step_id}?"
                            + (f" ({held} more skipped, as marked)" if held else ""))

        def progress(ev: Any) -> None:
            if ev.kind == "start" and ev.change and sys.stderr.isatty():
                sys.stderr.write(f"\r\033[K{ev.change.method} {ev.change.resource_id.rsplit('/', 1)[-1]} …")
                sys.stderr.flush()

        try:
            result = core.apply(changes, confirm=confirm, on_event=progress, parallel=args.parallel)
        except ApplyInterrupted as exc:
            say("\n".join(exc.report.lines()), args)
            raise
        finally:
            if sys.stderr.isatty():
                sys.stderr.write("\r\033[K")
    say("\n".join(result.lines()), args)
    say(f"Undo with `ztwizard undo --session {result.session_id}`.", args)
    failed, applied, skipped = result.of("failed"), result.of("applied"), result.of("skipped")
    adopted = f", {len(result.of('adopted'))} adopted" if result.of("adopted") else ""
    from .outcomes import BLOCKED_PREFIXES, BUSY_HINT

    if failed:
        because = result.report.failed_because() if result.report else ""
        raise ZtwError(f"{len(failed)} change(s) failed{because}; {len(applied)} applied{adopted} and "
                       f"{len(skipped)} skipped (listed above); nothing else was changed.",
                       hint=f"{BUSY_HINT if because else 'Fix the cause ARM gave, then run apply again'}; "
                            "applied changes are journaled for undo.")

    blocked = [o for o in skipped if o.message.startswith(BLOCKED_PREFIXES)]
    if blocked:  # product.md §3: changes left skipped for unmet dependencies exit 1
        raise ZtwError(f"{len(blocked)} change(s) were skipped because a change they depend on was not "
                       f"applied; {len(applied)} applied{adopted} (listed above).",
                       hint="Run apply again once the prerequisite is in place (include its step if it was not selected).")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from .engine import validate_selection

    validate_selection(args.step or [], [])
    if not args.yes and not _interactive():
        raise UsageError("undo asks for confirmation, and there is no terminal to ask at; nothing was changed.",
                         hint="Pass --yes to undo without asking (scripts, CI).")
    if dry_run(args):
        raise UsageError("--dry-run is set: undo refused; nothing was changed.", hint="Drop --dry-run to undo.")
    from . import plandiff

    with make_core(args, lazy=True) as core:  # the journal is judged before any target is built
        sid, rows = core.undoable(args.session, step_ids=args.step or None, change_ids=args.change or None)
        if not rows:
            print(f"Nothing to undo in session {sid}.")
            return 0
        if not args.yes:
            print(f"Session {sid}: these changes will be taken back (latest first):")
            for r in rows:
                print(f"  {r.method:6} {plandiff.target(r.resource_id)}  {r.check}: {r.title}")
            if not _ask(f"Undo {len(rows)} change(s)?"):
                print("Nothing was changed.")
                return 0
        result = core.undo(args.change or None, session_id=sid, step_ids=args.step or None,
                           override=args.override)
    say("\n".join(result.lines()), args)
    if not result.ok:
        unmet = len(result.report.unmet) if result.report else 0
        waiting = f", {unmet} wait for a missing prerequisite" if unmet else ""
        raise ZtwError(f"{len(result.of('failed'))} undo(s) failed and {len(result.of('drift'))} were refused"
                       f"{waiting}; {len(result.of('undone'))} undone (listed above); nothing else was changed.",
                       hint="Review the differences above; --override restores the refused ones anyway.")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    with make_core(args, lazy=True) as core:  # the journal only: no target is built
        sessions = core.sessions()
        changes = {s.id: core.session_changes(s.id) for s in sessions} if args.format == "json" else {}
    if args.format == "json":
        data = []
        for s in sessions:
            d = s.to_dict()
            d["changes"] = [{"id": r.change_id, "step": r.step_id, "check": r.check_id, "state": r.state,
                             "method": r.method, "action": r.action, "resource_id": r.resource_id,
                             "title": r.title, "note": r.note, "error": r.error}
                            for r in changes[s.id]]
            data.append(d)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    if not sessions:
        print("No sessions in the journal yet.")
        return 0
    print(f"{'SESSION':24} {'CREATED':20} {'STATUS':8} {'STEP':10} {'TARGET':8} CHANGES")
    for s in sessions:
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(s.counts.items()))
        print(f"{s.id:24} {s.created_at[:19].replace('T', ' '):20} {s.status:8} {s.step or '-':10} "
              f"{s.target_kind:8} {counts or 'none'}")
    return 0


def _mention_unfinished(core: Core, args: argparse.Namespace) -> None:
    from .resume import unfinished_note

    left = core.unfinished_session()
    if left is not None:
        sys.stderr.write(with_flags(unfinished_note(left.id, left.changes, left.in_flight), args) + "\n")


def cmd_resume(args: argparse.Namespace) -> int:
    with make_core(args, lazy=True) as core:
        sid = core.pick_session(args.session_id)
        if args.yes and not dry_run(args):
            settled, report = core.continue_session(sid)
            say("\n".join(settled.lines()), args)
            if report is not None:
                say("\n".join(report.lines()), args)
                if report.failed:
                    raise ZtwError(f"{len(report.failed)} change(s) failed on resume; {len(report.applied)} applied "
                                   "(listed above).", hint="Fix the cause ARM gave, then run `ztwizard resume --yes` again.")
            return 0
        if _interactive() and not dry_run(args):
            _ = core.gateway  # built now: bad input fails before the screen is taken
            return run_wizard(core, resume_session=sid)  # reconciles and opens the step where it stopped
        result = core.resume(sid)
    say("\n".join(result.lines()), args)
    if result.remaining:
        say(f"Open the wizard at a terminal (`ztwizard resume {sid}`) to continue, "
            f"or run `ztwizard apply` again; undo with `ztwizard undo --session {sid}`.", args)
    return 0


def run_wizard(core: Core, *, resume_session: str | None = None) -> int:
    from .tui import make_app  # Textual is imported only here

    return int(make_app(core, resume_session=resume_session).run() or 0)


NO_TERMINAL = "the wizard needs a terminal; use `ztwizard plan` for a report"


def cmd_tui(args: argparse.Namespace) -> int:
    # A pipe or a CI job would get escape codes and a wizard waiting for keys that never come.
    if not _interactive():
        raise UsageError(NO_TERMINAL + ".", hint="`ztwizard plan --format markdown` writes the same findings as text.")
    # Bad input (an unreadable estate file, an unknown cloud) fails here, before the screen is taken.
    with make_core(args) as core:
        return run_wizard(core)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import server

    sdir = state_dir(args)
    if args.sandbox_command == "serve":
        def ready(conn: dict[str, Any]) -> None:
            sys.stderr.write(f"sandbox listening on {conn['endpoint']} (PID {conn['pid']}); "
                             f"connection details in {server.connection_path(sdir)}. Ctrl-C stops it.\n")
            sys.stderr.flush()

        served = server.serve(sdir, port=args.port, estate=args.estate_spec, latency_ms=args.latency_ms,
                              faults=args.faults, seed=args.seed, ready=ready, lro_hang_seconds=args.lro_hang_seconds,
                              graph_lag_ms=args.graph_lag_ms, throttle=args.throttle)
        sys.stderr.write(served + "\n")
        return 0
    if args.sandbox_command == "reset":
        info = server.reset(sdir, estate=args.estate_spec)
        sys.stderr.write(f"sandbox reset to {args.estate_spec}: {info['resources']} resources in {info['state']}\n")
        return 0
    if args.sandbox_command == "export":
        count = server.export(sdir, output=args.output)
        if args.output and args.output != "-":
            sys.stderr.write(f"exported {count} resources to {args.output}\n")
        return 0
    raise UsageError("Missing sandbox command.", hint="Use `ztwizard sandbox serve|reset|export`.")


# ---- parser ------------------------------------------------------------------------------------

class _AzOutputFlag(argparse.Action):
    """`-o json`, az's habit: refused with what to write here (--format picks the format,
    --output names a file), never taken for something else."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        has_format = not parser.prog.endswith("sandbox export")  # the one writer of JSON only
        parser.error(f"-o is az's output option; ztwizard has --format and --output FILE.\n"
                     f"hint: {inputs.format_hint(str(values), has_format)}")


def _global_options(p: argparse.ArgumentParser, suppress: bool, sandbox_command: bool = False) -> None:
    """Global options are accepted before and after the command (`ztwizard plan --sandbox`)."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    g = p.add_argument_group("global options")
    g.add_argument("-o", action=_AzOutputFlag, metavar="FORMAT", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    g.add_argument("--sandbox", action="store_true", default=d(False), help="target the sandbox")
    if not sandbox_command:  # `sandbox serve --estate` names the sandbox's estate instead
        g.add_argument("--estate", metavar="FILE", default=d(None), type=inputs.path,
                       help="audit an estate file offline (read-only, implies --dry-run)")
    g.add_argument("--endpoint", metavar="URL", default=d(None), help="ARM endpoint")
    g.add_argument("--ca-bundle", metavar="PATH", default=d(None), type=inputs.path, help="CA bundle for --endpoint")
    g.add_argument("--cloud", default=d("AzureCloud"),
                   choices=["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"], help="Azure cloud")
    g.add_argument("--auth", default=d("default"), choices=["default", "cli", "device-code", "managed-identity", "env"],
                   help="how to sign in to Azure (default: DefaultAzureCredential without the browser)")
    g.add_argument("--auth-timeout", metavar="SECONDS", default=d(None),
                   help="give up signing in after this long (default 20)")
    g.add_argument("--management-group", action="append", metavar="ID", default=d(None),
                   help="every enabled subscription under this management group; repeatable (-s, -g narrow it)")
    g.add_argument("-s", "--subscription", action="append", metavar="ID", default=d(None),
                   help="subscription in scope; repeatable")
    g.add_argument("-g", "--resource-group", action="append", metavar="NAME", default=d(None),
                   help="narrow the scope; repeatable")
    g.add_argument("--state-dir", metavar="DIR", default=d(None), type=inputs.path, help="journal and sandbox state")
    g.add_argument("--dry-run", action="store_true", default=d(False), help="never write to Azure")
    g.add_argument("--waivers", metavar="FILE", default=d(None), help="waivers file (default STATE_DIR/waivers.toml)")
    g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks and log to stderr")
    g.add_argument("--log-file", metavar="FILE", default=d(None), type=inputs.path,
                   help="write the log to FILE (mode 0600)")
    g.add_argument("--lro-timeout", metavar="SECONDS", type=inputs.lro_timeout, default=d(None),
                   help="stop waiting for one long-running ARM operation after this long; resume reconciles it "
                        f"(default {inputs.DEFAULT_LRO_TIMEOUT})")
    g.add_argument("--max-estate-mb", metavar="MB", type=inputs.estate_mb, default=d(None),
                   help=f"refuse estate files larger than this (default {inputs.DEFAULT_MAX_ESTATE_MB})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ztwizard", description="Harden Azure IaaS landing zones along Microsoft's Zero Trust guidance.")
    parser.add_argument("--version", action="version", version=f"ztwizard {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        return p

    command("tui", "the wizard (default)")
    p = command("steps", "list the catalog")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = command("plan", "inspect and preview; never writes")
    p.add_argument("--step", action="append", metavar="ID", help=STEP_HELP)
    p.add_argument("--check", action="append", metavar="ID", help=CHECK_HELP)
    p.add_argument("--format", choices=["text", "json", "markdown", "sarif"], default="text")
    p.add_argument("--output", metavar="FILE", type=inputs.output_file, help="a regular file, or - for stdout")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 when everything complies, 2 when changes or failures are pending, 1 on error")
    p.add_argument("--out", metavar="PLANFILE", help="also save the plan for `ztwizard apply PLANFILE`")
    p.add_argument("--since", metavar="SESSION", help="only what that session fixed and has regressed since")

    p = command("apply", "apply the proposed changes (or exactly a saved plan), journaled")
    p.add_argument("planfile", nargs="?", metavar="PLANFILE", help="a plan saved with `plan --out`")
    p.add_argument("--step", action="append", metavar="ID", help=STEP_HELP)
    p.add_argument("--check", action="append", metavar="ID", help=CHECK_HELP)
    p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    p.add_argument("--allow-disruptive", action="store_true", help="include changes that cause downtime or cut access")
    p.add_argument("--allow-cost", action="store_true", help="include changes that create paid resources or plans")
    p.add_argument("--param", action="append", metavar="CHANGE.NAME=VALUE",
                   help="edit a parameter of a proposed change before applying; repeatable")
    from .outcomes import DEFAULT_PARALLEL

    p.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, metavar="N",
                   help=f"independent changes written at once (default {DEFAULT_PARALLEL}; 1: one at a time)")

    p = command("undo", "take back journaled changes")
    p.add_argument("--session", metavar="ID")
    p.add_argument("--step", action="append", metavar="ID", help=STEP_HELP)
    p.add_argument("--change", action="append", metavar="ID", help="change id; repeatable")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--override", action="store_true", help="undo even where someone changed the resource since")

    p = command("sessions", "sessions in the journal, newest first")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = command("resume", "reopen the wizard where a session stopped")
    p.add_argument("session_id", nargs="?", metavar="SESSION_ID")
    p.add_argument("--yes", action="store_true",
                   help="reconcile, then apply the rest of the session without the wizard")

    sb = command("sandbox", "the embedded ARM stand-in")
    sbsub = sb.add_subparsers(dest="sandbox_command", metavar="serve|reset|export")
    s = sbsub.add_parser("serve", help="serve the sandbox over HTTPS on 127.0.0.1 until interrupted")
    _global_options(s, suppress=True, sandbox_command=True)
    s.add_argument("--port", type=inputs.port, default=0)
    s.add_argument("--estate", dest="estate_spec", default="reference", metavar="reference|scale:N|FILE",
                   type=inputs.path)
    s.add_argument("--latency-ms", type=inputs.latency_ms, default=0)
    s.add_argument("--seed", type=inputs.seed, default=0, help="seed of the injected faults (reproducible runs)")
    s.add_argument("--faults", metavar="SPEC", default=None, help="e.g. 429:0.1,500:0.05,reset:0.01")
    s.add_argument("--lro-hang-seconds", metavar="SECONDS", type=inputs.lro_timeout, default=None,
                   help="an injected lro-hang finishes after this long (default: never)")
    s.add_argument("--throttle", choices=("arm", "off"), default="arm",
                   help="arm: ARM's token buckets, provider limits and Resource Graph quota, with 429s (default); "
                        "off: no throttling")
    s.add_argument("--graph-lag-ms", metavar="MS", type=inputs.latency_ms, default=300,
                   help="how long a write takes to show in Resource Graph queries (default 300)")
    s = sbsub.add_parser("reset", help="reset the sandbox state to an estate")
    _global_options(s, suppress=True, sandbox_command=True)
    s.add_argument("--estate", dest="estate_spec", default="reference", metavar="reference|scale:N|FILE",
                   type=inputs.path)
    s = sbsub.add_parser("export", help="write the sandbox state as an estate file")
    _global_options(s, suppress=True, sandbox_command=True)
    s.add_argument("--output", metavar="FILE", type=inputs.export_file, help="a regular file, or - for stdout")
    cli_review.add_parsers(command)  # waive, waivers, unwaive
    from .cli_export import add_parser as add_export

    add_export(command, inputs.output_file, STEP_HELP, CHECK_HELP)
    return parser


COMMANDS = {
    None: cmd_tui, "tui": cmd_tui, "steps": cmd_steps, "plan": cmd_plan, "apply": cmd_apply,
    "undo": cmd_undo, "sessions": cmd_sessions, "resume": cmd_resume, "sandbox": cmd_sandbox,
    "waive": lambda a: cli_review.cmd_waive(a, terminal()),
    "waivers": lambda a: cli_review.cmd_waivers(a, terminal()),
    "unwaive": lambda a: cli_review.cmd_unwaive(a, terminal()),
    "export": lambda a: _export(a),
}


def _export(args: argparse.Namespace) -> int:
    from .cli_export import cmd_export

    return cmd_export(args, make_core, write_output)


def terminal() -> cli_review.Terminal:
    """The plumbing the reviewer's commands borrow from this module."""
    return cli_review.Terminal(state_dir=state_dir, make_gateway=make_gateway, dry_run=dry_run,
                               interactive=_interactive, ask=_ask, describe=_describe_change)


def main(argv: list[str] | None = None) -> int:
    _degrade_unencodable_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if getattr(args, "max_estate_mb", None):
        from . import estate

        estate.MAX_ESTATE_BYTES = args.max_estate_mb * 2**20
    try:
        from .logs import configure

        configure(debug=debug, log_file=getattr(args, "log_file", None))
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is handled below
        return code
    except KeyboardInterrupt:
        sys.stderr.write("ztwizard: interrupted.\n")
        return 130
    except BrokenPipeError as exc:
        if not _stdout_closed():
            return _report(exc, args, debug)
        # `ztwizard steps | head -1`: the reader has what it wanted. Point stdout at /dev/null so
        # the interpreter's own flush at exit does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED
    except Exception as exc:
        return _report(exc, args, debug)


def _report(exc: Exception, args: argparse.Namespace, debug: bool) -> int:
    """The error as one sentence and a hint on stderr (a traceback only with --debug); commands
    the hint suggests carry this run's target and state flags."""
    if debug:
        raise exc
    err = user_error(exc)  # OS and SQLite errors become a sentence and a hint (errors.py)
    if err is not None:
        sys.stderr.write(f"ztwizard: error: {with_flags(err.message, args)}\n")
        if err.hint:
            sys.stderr.write(f"hint: {with_flags(err.hint, args)}\n")
        return err.exit_code
    sys.stderr.write(f"ztwizard: error: unexpected {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
                     "hint: re-run with --debug to see the traceback.\n")
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
