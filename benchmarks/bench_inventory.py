"""How fast does the wizard inventory an estate, against a naive scanner and the latency floor?

    .venv/bin/python benchmarks/bench_inventory.py [--resources 2000] [--latency-ms 20]

Runs an in-process sandbox loaded with `scale:N` and per-request latency, then inventories it
three ways through the real SDK clients:

* graph  — the gateway: Resource Graph pages + typed child reads in a small thread pool;
* lists  — the gateway's fallback: typed list calls per type and subscription;
* naive  — what a simple scanner does: ARM's generic list, then one GET per resource.

It reports wall time, requests sent, and two ratios: naive/graph (what the design buys) and
graph/floor, where the floor is the time the graph run's requests would take if every wave of
`max_workers` parallel requests cost exactly one latency (no client or server overhead)."""

from __future__ import annotations

import argparse
import math
import time

from ztwizard.gateway import Gateway, api_version_for
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target


def timed(label: str, sb: Sandbox, fn) -> tuple[float, int]:
    before = len(sb.request_log)
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    requests = len(sb.request_log) - before
    print(f"{label:<6} {elapsed:8.2f} s  {requests:6d} requests")
    return elapsed, requests


def naive(gw: Gateway, subs: list[str]) -> None:
    for sub in subs:
        for item in gw.client("resources", sub).resources.list():
            gw.client("resources", sub).resources.get_by_id(item.id, api_version=api_version_for(item.id))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=2000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    sb = Sandbox(None, estate=f"scale:{args.resources}", latency_ms=args.latency_ms, page_size=1000,
                 reads_per_hour=10**9, writes_per_hour=10**9)
    gw = Gateway(in_process_target(sb))
    subs = gw.list_subscriptions()
    print(f"scale:{args.resources} over {len(subs)} subscriptions, {args.latency_ms} ms per request, "
          f"{gw.max_workers} parallel child reads")
    inv_holder: dict[str, int] = {}

    def graph() -> None:
        inv_holder["graph"] = len(gw.inventory().resources)

    def lists() -> None:
        inv_holder["lists"] = len(gw.inventory(use_graph=False).resources)

    t_graph, n_graph = timed("graph", sb, graph)
    t_lists, _ = timed("lists", sb, lists)
    print(f"resources inventoried: graph {inv_holder['graph']}, lists {inv_holder['lists']}")
    floor = math.ceil(n_graph / gw.max_workers) * args.latency_ms / 1000
    print(f"lists/graph  {t_lists / t_graph:6.1f}x")
    if not args.skip_naive:
        t_naive, _ = timed("naive", sb, lambda: naive(gw, subs))
        print(f"naive/graph  {t_naive / t_graph:6.1f}x")
    print(f"graph/floor  {t_graph / floor:6.1f}x  (floor {floor:.2f} s)")


if __name__ == "__main__":
    main()
