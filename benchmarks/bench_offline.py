"""Offline audits: the same 10,000-resource export through ztwizard and through Checkov, and a
50,000-resource estate through ztwizard: wall time, CPU time and peak RSS of each run.

    .venv/bin/python benchmarks/bench_offline.py [--resources 10000] [--large 50000] \\
        [--checkov /tmp/checkov-venv/bin/checkov]

Checkov is not a dependency: install it into a venv of its own first
(`python3 -m venv /tmp/checkov-venv && /tmp/checkov-venv/bin/pip install checkov`). Checkov's
ARM framework reads deployment templates, so the export is handed to it as one template whose
`resources` are the export's resources (type, apiVersion, name as `parent/child`, location,
properties), and run with `--framework arm --skip-download`. ztwizard reads the export as is
(`--estate FILE plan --format json --output FILE`). Each run is its own process, so RSS is its own."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ztwizard.errors import ZtwError
from ztwizard.gateway import api_version_for
from ztwizard.sandbox.estates import load_estate

ZTW = [sys.executable, "-c", "from ztwizard.cli import main; raise SystemExit(main())"]


def timed(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit code) of one child process, from its own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def template_name(resource_id: str) -> str:
    """A template's `name`: the resource's names after its provider namespace, `parent/child`."""
    segs = [s for s in resource_id.split("/") if s]
    low = [s.lower() for s in segs]
    if "providers" not in low:
        return segs[-1]
    tail = segs[max(i for i, s in enumerate(low) if s == "providers") + 2:]
    return "/".join(tail[1::2])


def as_template(resources: list[dict]) -> dict:
    """The export as one ARM deployment template (what Checkov's ARM framework reads)."""
    out = []
    for r in resources:
        try:
            version = api_version_for(r["id"])
        except ZtwError:  # a type outside the catalog still gets its entry
            version = "2023-01-01"
        entry = {"type": r["type"], "apiVersion": version, "name": template_name(r["id"]),
                 "properties": r.get("properties") or {}}
        for k in ("location", "kind", "sku", "tags", "identity", "zones"):
            if r.get(k) is not None:
                entry[k] = r[k]
        out.append(entry)
    return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "resources": out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=10000)
    ap.add_argument("--large", type=int, default=50000)
    ap.add_argument("--checkov", default=shutil.which("checkov") or "/tmp/checkov-venv/bin/checkov")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ztw-offline-") as tmp:
        d = Path(tmp)
        export = d / "estate.json"
        resources = load_estate(f"scale:{args.resources}")
        export.write_text(json.dumps(resources))
        template_dir = d / "arm"
        template_dir.mkdir()
        (template_dir / "estate.json").write_text(json.dumps(as_template(resources)))
        del resources
        ztw = timed([*ZTW, "--state-dir", str(d / "state"), "--estate", str(export), "plan", "--format", "json",
                     "--output", str(d / "plan.json")])
        print(f"ztwizard offline {args.resources}: wall {ztw[0]:.1f} s, CPU {ztw[1]:.1f} s, peak RSS {ztw[2]:.0f} MB "
              f"(exit {ztw[3]})")
        if Path(args.checkov).exists():
            chk = timed([args.checkov, "--framework", "arm", "--skip-download", "-d", str(template_dir),
                         "--compact", "--quiet", "-o", "json"])
            print(f"checkov  arm     {args.resources}: wall {chk[0]:.1f} s, CPU {chk[1]:.1f} s, "
                  f"peak RSS {chk[2]:.0f} MB (exit {chk[3]})")
            print(f"  ztwizard is {chk[0] / ztw[0]:.1f}x faster (wall), {chk[1] / ztw[1]:.1f}x (CPU)")
        else:
            print(f"checkov not found at {args.checkov}: install it in its own venv (see the module's note)")
        if args.large:
            large = d / "large.json"
            large.write_text(json.dumps(load_estate(f"scale:{args.large}")))
            big = timed([*ZTW, "--state-dir", str(d / "state"), "--estate", str(large), "plan", "--format", "json",
                         "--output", str(d / "plan-large.json")])
            print(f"ztwizard offline {args.large}: wall {big[0]:.1f} s, CPU {big[1]:.1f} s, peak RSS {big[2]:.0f} MB "
                  f"(exit {big[3]})")


if __name__ == "__main__":
    main()
