"""How fast does apply write 1,000 changes, one at a time and concurrently, within ARM's limits?

    .venv/bin/python benchmarks/bench_apply.py [--changes 1000] [--resources 3000] [--latency-ms 50] [--parallel 8] [--throttle arm|off]

Loads an in-process sandbox with `scale:N`, plans it (without latency), keeps the first
`--changes` changes in apply order whose prerequisites are kept too, then applies them twice on
fresh copies of the estate through the real SDK clients, at `--latency-ms` per request: with
`parallel=1` (sequential) and with `--parallel` workers. The sandbox throttles as `sandbox serve
--throttle arm` does: ARM's 2024 buckets per subscription and region (writes 200, refilled at
10/s) and the providers' own (Storage: 10 writes/s, 800 reads and 100 lists per 5 minutes).

The honest maximum rate: the writes to each (subscription, region) draw on ARM's write bucket
and, for Storage and Network, the provider's: `n` writes to one bucket of capacity `c` refilled
at `r`/s take at least max(0, n - c) / r s; and no run beats its latency floor: the requests ARM's
protocol needs for each change, `parallel` at a time. Those are the read before the write and the
write, and for a write ARM answers as a long-running operation (201/202) one status poll and, for
a PUT or PATCH, the final GET; they are counted from ARM's answers in a zero-latency apply of the
same changes on another copy, not from what the client happened to send. max = changes /
max(every floor).
Lost/duplicated compares the journal's rows with the changes and the sandbox's successful writes
with the applied rows; 429s are counted over the whole run."""

from __future__ import annotations

import argparse
import re
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from ztwizard import journal as J
from ztwizard import resource_id as rid
from ztwizard.apply import apply_changes, start_session, unset_params
from ztwizard.engine import inspect
from ztwizard.gateway import Gateway
from ztwizard.model import Change
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.throttle import ARM_LIMITS, PROVIDER_LIMITS
from ztwizard.target import in_process_target

WRITES = ("PUT", "PATCH", "DELETE", "POST")
_TOP = re.compile(r"^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/([^/]+)/[^/]+/[^/]+)", re.IGNORECASE)


def sandbox(resources: int, latency_ms: int, throttle: str = "arm") -> Sandbox:
    return Sandbox(None, estate=f"scale:{resources}", latency_ms=latency_ms, lro_seconds=0, throttle=throttle)


def budget_floor(sb: Sandbox, changes: list[Change]) -> tuple[float, str]:
    """The least time the writes take within the write buckets they draw on (ARM's and the
    provider's, per subscription and region), and the binding bucket."""
    per_bucket: Counter[tuple[str, str, str]] = Counter()
    for c in changes:
        m = _TOP.match(c.resource_id)
        top = sb.store.get(m.group(1)) if m else None
        region = str((top or {}).get("location") or "global").lower()
        sub = (rid.subscription_of(c.resource_id) or "").lower()
        per_bucket[(sub, region, "arm writes")] += 1
        if m and m.group(2).lower() in PROVIDER_LIMITS:
            per_bucket[(sub, region, f"{m.group(2).split('.')[-1].lower()} writes")] += 1
    best, which = 0.0, "none"
    for (sub, region, bucket), n in per_bucket.items():
        provider = bucket.split()[0]
        cap, rate = ARM_LIMITS["writes"] if provider == "arm" else PROVIDER_LIMITS[f"microsoft.{provider}"]["writes"]
        floor = max(0.0, n - cap) / rate
        if floor > best:
            best, which = floor, f"{bucket} {sub[:8]}…/{region}: {n} writes, {cap} + {rate:g}/s"
    return best, which


# The scale estate's storage keys were never rotated: ARM refuses a SAS expiration policy there
# (a 400 per change, journaled as failed), which would measure refusals rather than writes.
LEFT_OUT = ("storage-2b",)


def protocol_requests(args: argparse.Namespace, changes: list[Change]) -> tuple[int, int]:
    """The requests the changes need at least, and how many of the writes were LROs: applied once
    without latency or throttle on a fresh copy, then counted from the answers (a pre-read and a
    write per change; an LRO's first status poll; a PUT/PATCH LRO's final GET)."""
    sb = sandbox(args.resources, 0, "off")
    gw = gateway(sb)
    with tempfile.TemporaryDirectory(dir=args.journal_dir) as state, J.Journal(Path(state)) as journal:
        sid = start_session(journal, gw, changes)
        before = len(sb.request_log)
        apply_changes(gw, journal, sid, changes, allow_disruptive=True, allow_cost=True, parallel=1, verify=False)
    log = list(sb.request_log)[before:]
    lro = [m for m, _p, s in log if m in WRITES and s in (201, 202)]
    return 2 * len(changes) + len(lro) + sum(1 for m in lro if m in ("PUT", "PATCH")), len(lro)


def gateway(sb: Sandbox) -> Gateway:
    target = in_process_target(sb)
    target.transport.sleep = time.sleep  # wait out Retry-After for real: the throttle is the point
    return Gateway(target)


def pick(changes: list[Change], n: int) -> list[Change]:
    kept: list[Change] = []
    ids: set[str] = set()
    for c in changes:
        if len(kept) == n:
            break
        # a change waiting for a parameter (which Key Vault key) is never sent: not a write to time
        if c.check not in LEFT_OUT and not unset_params(c) and all(d in ids for d in c.depends_on):
            kept.append(c)
            ids.add(c.id)
    return kept


def run(label: str, args: argparse.Namespace, changes: list[Change], parallel: int) -> dict[str, float]:
    sb = sandbox(args.resources, args.latency_ms, args.throttle)
    gw = gateway(sb)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(dir=args.journal_dir) as state, J.Journal(Path(state)) as journal:
        sid = start_session(journal, gw, changes)
        start = time.perf_counter()
        report = apply_changes(gw, journal, sid, changes, allow_disruptive=True, allow_cost=True,
                               parallel=parallel, verify=False)
        elapsed = time.perf_counter() - start
        rows = journal.changes(sid)
        applied = [r for r in rows if r.state == J.APPLIED]
        # Lost: a change with no settled row (never sent, or its outcome unknown) or reported twice.
        settled = {r.change_id for r in rows if r.state not in (J.PLANNED, *J.UNSETTLED)}
        lost = len(changes) - len(settled) + (len(report.outcomes) - len({o.change_id for o in report.outcomes}))
        writes = Counter(p.lower().split("?")[0] for (m, p, s) in sb.request_log if m in WRITES and 200 <= s < 300)
        # A change applied by more than one successful write to its resource (same resource twice
        # in the plan counts once per change).
        per_resource = Counter(r.resource_id.lower() for r in applied)
        duplicated = sum(max(0, writes.get(k, 0) - n) for k, n in per_resource.items()
                         if not k.endswith("/virtualmachines"))  # VM power actions are POSTs of their own
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    throttled = sum(1 for (m, _p, s) in sb.request_log if s == 429)
    requests = len(sb.request_log)
    rate = len(report.applied) / elapsed if elapsed else 0.0
    # What the requests actually sent take at the latency, `parallel` at a time (above the floor
    # when the client sends more than the protocol needs, e.g. a second status poll)
    sent = requests * args.latency_ms / 1000 / parallel
    print(f"{label:<11} {elapsed:8.1f} s wall  {cpu:6.1f} s CPU  {len(report.applied):5d} applied  "
          f"{len(report.failed):3d} failed  {rate:7.1f} changes/s  {requests / max(1, len(changes)):.2f} requests/change  "
          f"{throttled:5d} 429s  lost {lost}  duplicated {duplicated}  (the requests sent take {sent:.1f} s)")
    return {"elapsed": elapsed, "cpu": cpu, "rate": rate, "applied": len(report.applied), "lost": lost,
            "dup": duplicated, "429": throttled}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--resources", type=int, default=3000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--throttle", choices=("arm", "off"), default="arm")
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--journal-dir", default=None,
                    help="where the journal lives (default: the temp dir); /dev/shm shows the cost of its fsyncs")
    args = ap.parse_args()
    planner = sandbox(args.resources, 0, "off")
    changes = pick(inspect(gateway(planner)).changes(), args.changes)
    per_sub = Counter((rid.subscription_of(c.resource_id) or "").lower() for c in changes)
    throttle_floor, binding = budget_floor(planner, changes) if args.throttle == "arm" else (0.0, "off")
    needed, lros = protocol_requests(args, changes)
    latency_floor = needed * args.latency_ms / 1000 / args.parallel
    two_per_change = len(changes) * 2 * args.latency_ms / 1000 / args.parallel
    best = len(changes) / max(throttle_floor, latency_floor)
    print(f"{len(changes)} changes over {len(per_sub)} subscriptions (most in one: {max(per_sub.values())}); "
          f"{needed} requests needed ({lros} writes are LROs); floors: write budget {throttle_floor:.1f} s "
          f"({binding}), latency {latency_floor:.1f} s (two per change would be {two_per_change:.1f} s) "
          f"-> max {best:.1f} changes/s")
    results = {}
    if not args.skip_sequential:
        results["sequential"] = run("sequential", args, changes, 1)
    results["concurrent"] = run(f"parallel={args.parallel}", args, changes, args.parallel)
    print("\n| run | wall s | CPU s | changes/s | of max | 429s | lost | duplicated |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['elapsed']:.1f} | {r['cpu']:.1f} | {r['rate']:.1f} | {r['rate'] / best:.2f} | "
              f"{r['429']} | {r['lost']} | {r['dup']} |")


if __name__ == "__main__":
    main()
