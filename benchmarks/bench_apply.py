"""How fast does apply write 1,000 changes, one at a time and concurrently, against ARM's write budget?

    .venv/bin/python benchmarks/bench_apply.py [--changes 1000] [--resources 3000] [--latency-ms 50] [--parallel 8]

Loads an in-process sandbox with `scale:N`, plans it (without latency), keeps the first
`--changes` changes in apply order whose prerequisites are kept too, then applies them twice on
fresh copies of the estate through the real SDK clients, at `--latency-ms` per request: with
`parallel=1` (sequential) and with `--parallel` workers. The sandbox's write throttle is set to
ARM's write bucket per subscription (200 writes, refilled at 10/s); reads are not throttled.

The honest maximum rate: each subscription may burst 200 writes, then 10/s, so `n_s` writes in
subscription s take at least max(0, n_s - 200) / 10 s; and no run beats its latency floor (two
requests, a read and a write, per change, `parallel` at a time). max = changes / max(both floors).
Lost/duplicated compares the journal's rows with the changes and the sandbox's successful writes
with the applied rows."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from ztwizard import journal as J
from ztwizard import resource_id as rid
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect
from ztwizard.gateway import Gateway
from ztwizard.model import Change
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target

BUCKET, REFILL = 200, 10.0  # ARM's writes per subscription (and region): burst, then per second
WRITES = ("PUT", "PATCH", "DELETE", "POST")


def sandbox(resources: int, latency_ms: int) -> Sandbox:
    return Sandbox(None, estate=f"scale:{resources}", latency_ms=latency_ms, lro_seconds=0,
                   reads_per_hour=10**9, writes_per_hour=BUCKET, throttle_window=BUCKET / REFILL)


# The scale estate's storage keys were never rotated: ARM refuses a SAS expiration policy there
# (a 400 per change, journaled as failed), which would measure refusals rather than writes.
LEFT_OUT = ("storage-2b",)


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
        if c.check not in LEFT_OUT and all(d in ids for d in c.depends_on):
            kept.append(c)
            ids.add(c.id)
    return kept


def run(label: str, args: argparse.Namespace, changes: list[Change], parallel: int) -> dict[str, float]:
    sb = sandbox(args.resources, args.latency_ms)
    gw = gateway(sb)
    with tempfile.TemporaryDirectory() as state, J.Journal(Path(state)) as journal:
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
    throttled = sum(1 for (m, _p, s) in sb.request_log if s == 429)
    rate = len(report.applied) / elapsed if elapsed else 0.0
    print(f"{label:<11} {elapsed:8.1f} s  {len(report.applied):5d} applied  {len(report.failed):3d} failed  "
          f"{rate:7.1f} changes/s  {throttled:5d} 429s  lost {lost}  duplicated {duplicated}")
    return {"elapsed": elapsed, "rate": rate, "applied": len(report.applied), "lost": lost, "dup": duplicated}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--resources", type=int, default=3000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--skip-sequential", action="store_true")
    args = ap.parse_args()
    planner = sandbox(args.resources, 0)
    changes = pick(inspect(gateway(planner)).changes(), args.changes)
    per_sub = Counter((rid.subscription_of(c.resource_id) or "").lower() for c in changes)
    throttle_floor = max(max(0, n - BUCKET) / REFILL for n in per_sub.values())
    latency_floor = len(changes) * 2 * args.latency_ms / 1000 / args.parallel
    best = len(changes) / max(throttle_floor, latency_floor)
    print(f"{len(changes)} changes over {len(per_sub)} subscriptions (most in one: {max(per_sub.values())}); "
          f"floors: budget {throttle_floor:.1f} s, latency {latency_floor:.1f} s -> max {best:.1f} changes/s")
    results = {}
    if not args.skip_sequential:
        results["sequential"] = run("sequential", args, changes, 1)
    results["concurrent"] = run(f"parallel={args.parallel}", args, changes, args.parallel)
    print("\n| run | wall s | changes/s | of max | lost | duplicated |\n|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['elapsed']:.1f} | {r['rate']:.1f} | {r['rate'] / best:.2f} | {r['lost']} | {r['dup']} |")


if __name__ == "__main__":
    main()
