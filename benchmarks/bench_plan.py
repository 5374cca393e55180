"""Plan at scale against a throttled ARM: wall time, requests per resource, 429s, peak RSS, the
honest floor and the ratio to it, and a naive sequential list-then-GET scanner on the same estate.

    .venv/bin/python benchmarks/bench_plan.py [--resources 10000] [--latency-ms 50] [--naive-sample 300]

Runs `ztwizard sandbox serve --estate scale:N --latency-ms L` (throttling on: ARM's 2024 buckets,
Storage and Network limits, Resource Graph quota) in its own process, then `ztwizard --sandbox
plan` in another, so the client's peak RSS is its own. Requests and 429s come from the line
`serve` prints on exit. The floor is computed from the same plan's requests, counted in-process
on the same estate without latency: the requests that must follow one another (subscription
list, resource-group wave, the longest Resource Graph page chain, one wave per child-read round,
the subscription-settings wave) times the latency, plus, for every (subscription, region,
bucket), the time its budget needs to let its requests through. The naive scanner lists every
subscription's resources and GETs each one, one request at a time: it is timed on a sample of
GETs and extrapolated (labelled so). Stage timestamps go to stderr; `--naive-sample 0` skips the
naive scanner."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ztwizard import engine
from ztwizard.gateway import Gateway, api_version_for
from ztwizard.pacing import LIMITS, Pacer, buckets_for
from ztwizard.resource_id import subscription_of
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.server import connection_alive
from ztwizard.target import StaticTokenCredential, Target, in_process_target

ZTW = [sys.executable, "-c", "from ztwizard.cli import main; raise SystemExit(main())"]
SERVED = re.compile(r"served (\d+) requests \((\d+) reads, (\d+) writes, (\d+) throttled\)")
T0 = time.perf_counter()


def stage(what: str) -> None:
    """A timestamped progress line on stderr, so a long run shows where it is."""
    print(f"[{time.perf_counter() - T0:7.1f} s, CPU {time.process_time():6.1f} s] {what}", file=sys.stderr, flush=True)


def serve(state: Path, n: int, latency_ms: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*ZTW, "--state-dir", str(state), "sandbox", "serve", "--estate", f"scale:{n}",
                             "--latency-ms", str(latency_ms), "--throttle", "arm"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while connection_alive(state) is None:
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"serve did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[str]) -> tuple[int, int, int, int]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    m = SERVED.search(err or "")
    if not m:
        raise SystemExit(f"serve said no `served …` line: {err}")
    return int(m[1]), int(m[2]), int(m[3]), int(m[4])


def floor_seconds(n: int, latency: float) -> tuple[float, dict[str, float]]:
    """The honest floor of the same plan (see the module's note), from its requests counted in-process."""
    sb = Sandbox(None, estate=f"scale:{n}", page_size=1000)
    # Counting needs no pacing: the in-process sandbox does not throttle, so the client's budgets
    # would only delay the same requests (the served run, paced, had no 429s to retry).
    engine.survey(Gateway(in_process_target(sb), pacer=Pacer(limits={})))
    log = list(sb.request_log)
    graph = [p for m, p, _ in log if "resourcegraph" in p.lower()]
    tables = 3
    chain = -(-len(graph) // tables)  # the longest page chain, at least
    rounds = 1  # no catalog read waits on another today: the child reads are one wave at best
    sequential = (1 + 1 + chain + rounds + 1) * latency
    per_bucket: Counter[tuple[str, str, str]] = Counter()
    for method, path, _ in log:
        if "resourcegraph" in path.lower():
            per_bucket[("", "", "graph")] += 1
            continue
        sub = (subscription_of(path) or "").lower() if path.lower().startswith("/subscriptions/") else ""
        if not sub:
            continue
        region = sb._region_of(path)
        for b in buckets_for(method, path):
            per_bucket[(sub, region, b)] += 1
    paced = max((max(0.0, (count - LIMITS[b][0]) / LIMITS[b][1]) for (_s, _r, b), count in per_bucket.items()),
                default=0.0)
    return sequential + paced, {"sequential": sequential, "paced": paced, "graph_queries": len(graph),
                                "requests": len(log)}


def naive_sample(conn: dict[str, str], sample: int) -> tuple[float, int, int]:
    """A naive scanner: list every subscription's resources, then GET each, one at a time. Times
    the lists and the first `sample` GETs; returns (seconds, requests sent, resources listed)."""
    target = Target(kind="sandbox", endpoint=conn["endpoint"], credential=StaticTokenCredential(conn["token"]),
                    ca_bundle=conn["ca_bundle"])
    gw = Gateway(target)
    start = time.perf_counter()
    subs = gw.list_subscriptions()
    sent, items = 1, []
    for sub in subs:
        pages = gw.client("resources", sub).resources.list().by_page()
        for page in pages:
            sent += 1
            items.extend(page)
    for item in items[:sample]:
        gw.client("resources", subscription_of(item.id) or "").resources.get_by_id(
            item.id, api_version=api_version_for(item.id))
        sent += 1
    return time.perf_counter() - start, sent, len(items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=10000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--naive-sample", type=int, default=300, help="GETs the naive scanner is timed on (0: skip it)")
    args = ap.parse_args()
    n, latency = args.resources, args.latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="ztw-bench-") as tmp:
        state = Path(tmp) / "state"
        stage(f"serve scale:{n} starting")
        server = serve(state, n, args.latency_ms)
        stage("serve ready; plan starting")
        try:
            out = Path(tmp) / "plan.json"
            start = time.perf_counter()
            run = subprocess.run([*ZTW, "--sandbox", "--state-dir", str(state), "plan", "--format", "json",
                                  "--output", str(out)], capture_output=True, text=True,
                                 env={**os.environ, "ZTWIZARD_SANDBOX_IN_PROCESS": "0"})
            wall = time.perf_counter() - start
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            rss_mb, client_cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        finally:
            stage("plan done; serve stopping")
            total, reads, writes, throttled = stop(server)
        if run.returncode not in (0, 2) or not out.exists():
            raise SystemExit(f"plan failed ({run.returncode}): {run.stderr}")
        plan = json.loads(out.read_text())
        errors = sum(1 for s in plan["steps"] for f in s["findings"] if f["status"] == "error")
        naive_time, naive_sent, listed = 0.0, 0, 0
        if args.naive_sample > 0:
            stage("serve restarting for the naive scanner")
            server = serve(state, n, args.latency_ms)
            try:
                stage("naive scanner starting")
                naive_time, naive_sent, listed = naive_sample(connection_alive(state) or {}, args.naive_sample)
            finally:
                stop(server)
    stage("floor: counting the plan's requests in-process")
    floor, parts = floor_seconds(n, latency)
    stage("floor counted")
    lists = naive_sent - args.naive_sample
    per_request = naive_time / naive_sent if naive_sent else 0.0
    naive_total = (lists + listed) * per_request
    print(f"plan scale:{n}, {args.latency_ms} ms per request, throttling on (ARM 2024 buckets, Storage/Network, ARG quota)")
    print(f"  wall {wall:.1f} s, {total} requests ({total / n:.3f} per resource), {throttled} throttled (429), "
          f"{errors} error findings, client peak RSS {rss_mb:.0f} MB, client CPU {client_cpu:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  floor {floor:.2f} s (sequential {parts['sequential']:.2f} s + paced {parts['paced']:.2f} s; "
          f"{parts['graph_queries']:.0f} Resource Graph queries; {parts['requests']:.0f} requests counted in-process "
          f"vs {total} served) -> ratio {wall / floor:.2f}x")
    if args.naive_sample > 0:
        print(f"  naive list-then-GET: {listed} resources; timed {naive_sent} requests in {naive_time:.1f} s "
              f"({per_request * 1000:.0f} ms each); EXTRAPOLATED to {lists + listed} requests: {naive_total:.0f} s "
              f"-> ztwizard is {naive_total / wall:.0f}x faster")


if __name__ == "__main__":
    main()
