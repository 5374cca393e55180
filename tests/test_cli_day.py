"""The command line as a Terraform or az user reads it (issue 13, items 14-18): a plan that reads
like a plan, az's -o habit refused with a hint, hints that paste, quiet pipes, ASCII where the
terminal needs it, and an interactive apply that shows the diff before it asks."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ztwizard.cli import main

ZTWIZARD = str(Path(sys.executable).parent / "ztwizard")
CHECKS = ["--check", "storage-1e", "--check", "hub-3a", "--check", "storage-1a"]


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    return tmp_path / "state"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _plan_json(capsys, state, *checks):
    code, out, _ = _run(capsys, "--sandbox", "--state-dir", state, "plan", "--format", "json", *checks)
    assert code == 0
    return json.loads(out)


# ---- 14: a plan reads like a plan ---------------------------------------------------------------

def test_text_plan_shows_markers_parents_attribute_diff_and_the_tally(capsys, state):
    code, out, _ = _run(capsys, "--sandbox", "--state-dir", state, "plan", *CHECKS)
    assert code == 0
    # An update: the resource, then only the attribute it sets, before → after in ARM's spelling.
    assert "~ stcontosoappdata (storageAccounts, rg-storage): Restrict copy scope" in out
    assert '~ properties.allowedCopyScope: null → "AAD"' in out
    assert "~ properties.supportsHttpsTrafficOnly: false → true" in out
    # A child resource is named with its parent; a create is marked + with what it sends.
    assert "~ vnet-hub-weu/GatewaySubnet (subnets, rg-hub-network): Route" in out
    assert "+ rt-GatewaySubnet (routeTables, rg-hub-network): Create route table" in out
    assert '+ location: "westeurope"' in out
    # Never Python's spelling of a value (ARM's identity type "None" is a quoted string).
    assert not re.search(r'(?<!")\b(None|True|False)\b(?!")', out), out
    plan = _plan_json(capsys, state, *CHECKS)
    changes = [c for s in plan["steps"] for c in s["changes"]]
    creates = sum(c["action"] == "create" for c in changes)
    updates = sum(c["action"] == "update" for c in changes)
    tally = f"Plan: {creates} to create, {updates} to update, 0 to delete."
    assert creates and updates and tally in out.splitlines()
    lines = out.rstrip("\n").splitlines()
    after = lines[lines.index(tally) + 1:]  # the tally closes the plan; only what is skipped follows
    assert all(line.startswith(("Not proposed: ", "Apply skips ")) for line in after), after


def test_plan_says_what_apply_will_skip_and_why(capsys, state):
    code, out, _ = _run(capsys, "--sandbox", "--state-dir", state, "plan", "--check", "hub-3b", "--check", "storage-1h",
                        "--check", "storage-1g")
    assert code == 0
    assert "[disruptive]" in out
    assert re.search(r"^Apply skips \d+ disruptive change\(s\) unless --allow-disruptive", out, re.M)
    assert re.search(r"^Not proposed: \d+ failing finding\(s\) need a person to fix them", out, re.M)
    # no Key Vault key in the reference estate to default to: storage-1g's switch waits for one
    assert re.search(r"^Apply skips 3 change\(s\) waiting for a parameter \(keyName, keyVaultId\) until "
                     r"--param CHANGE.NAME=VALUE sets it, e.g. --param storage-1g-\w+\.keyName=", out, re.M)


def test_markdown_report_shows_the_same_diff_and_names_the_target(capsys, state):
    code, md, _ = _run(capsys, "--sandbox", "--state-dir", state, "plan", "--format", "markdown", *CHECKS)
    assert code == 0
    assert "Target: the sandbox (in-process); subscriptions: `" in md
    assert "**~ update** `vnet-hub-weu/GatewaySubnet` (subnets, rg-hub-network)" in md
    assert '  ~ properties.allowedCopyScope: null → "AAD"' in md
    assert "  ```diff" in md
    assert re.search(r"\*\*Plan: \d+ to create, \d+ to update, 0 to delete\.\*\*", md)
    assert "| `null` | `\"AAD\"` |" in md  # the findings table spells values as ARM does


def test_finding_messages_spell_values_as_arm_does(capsys, state):
    plan = _plan_json(capsys, state, "--check", "storage-1e", "--check", "storage-1a")
    messages = [f["message"] for s in plan["steps"] for f in s["findings"] if f["status"] == "fail"]
    assert 'allowedCopyScope is null; expected "AAD".' in messages
    assert "supportsHttpsTrafficOnly is false; expected true." in messages


# ---- 15: az habits ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, hint", [
    (["plan", "--output", "json"], "--format json"),
    (["plan", "--output", "table"], "--format text"),
    (["plan", "-o", "json"], "--format json"),
    (["-o", "yaml", "plan"], "--format json"),
    (["sandbox", "export", "--output", "json"], "writes JSON only"),
])
def test_a_format_name_as_output_is_refused_with_a_hint_and_writes_nothing(argv, hint, state, capsys,
                                                                            monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["--sandbox", "--state-dir", str(state), *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "hint:" in err and hint in err and "Traceback" not in err
    assert not any(p.name in ("json", "table", "yaml") for p in tmp_path.iterdir())


def test_a_path_that_looks_like_a_format_is_still_a_file(state, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, _ = _run(capsys, "--sandbox", "--state-dir", state, "plan", "--check", "storage-1e",
                      "--format", "json", "--output", "./json")
    assert code == 0
    assert json.loads((tmp_path / "json").read_text())["schema"] == "ztwizard.plan/v1"


# ---- 16: hints carry the flags that got you there -----------------------------------------------

def test_the_undo_hint_after_apply_works_when_pasted(state, capsys):
    code, out, err = _run(capsys, "--sandbox", "--state-dir", state, "apply", "--yes", "--check", "storage-1e")
    assert code == 0, err
    (hint,) = re.findall(r"Undo with `(ztwizard [^`]+)`", out)
    assert hint.startswith(f"ztwizard --sandbox --state-dir {shlex.quote(str(state))} undo --session ")
    code, out, err = _run(capsys, *shlex.split(hint)[1:], "--yes")
    assert code == 0, err
    assert "undone" in out
    plan = _plan_json(capsys, state, "--check", "storage-1e")
    assert all(f["status"] == "fail" for s in plan["steps"] for f in s["findings"])  # back as it was


def test_error_hints_name_the_same_target_and_state(state, capsys):
    code, _, err = _run(capsys, "--sandbox", "--state-dir", state, "resume")
    assert code == 2
    assert f"`ztwizard --sandbox --state-dir {shlex.quote(str(state))} sessions`" in err
    code, _, err = _run(capsys, "--sandbox", "--state-dir", state, "undo", "--yes", "--session", "nope")
    assert code == 2 and f"`ztwizard --sandbox --state-dir {shlex.quote(str(state))} sessions`" in err


def test_with_flags_leaves_modes_out_and_keeps_flags_a_hint_already_has():
    from ztwizard.cli import build_parser, with_flags

    args = build_parser().parse_args(["--estate", "my estate.json", "--dry-run", "-s",
                                      "00000000-0000-0000-0000-000000000001", "plan"])
    assert with_flags("Run `ztwizard plan --format json`.", args) == (
        "Run `ztwizard --estate 'my estate.json' -s 00000000-0000-0000-0000-000000000001 plan --format json`.")
    args = build_parser().parse_args(["--sandbox", "--state-dir", "/tmp/s", "plan"])
    assert with_flags("`ztwizard --sandbox sessions`", args) == "`ztwizard --state-dir /tmp/s --sandbox sessions`"
    assert with_flags("`ztwizard sandbox reset`", args) == "`ztwizard --state-dir /tmp/s sandbox reset`"


# ---- 17: pipes and encodings --------------------------------------------------------------------

def _to_closed_pipe(*argv, env=None):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written (`| head` that has had enough)
    try:
        return subprocess.run([ZTWIZARD, *argv], stdout=write, stderr=subprocess.PIPE, timeout=120,
                              env={**os.environ, **(env or {})})
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [["steps"], ["plan", "--check", "storage-1e"]])
def test_a_reader_that_goes_away_ends_the_run_quietly_with_141(argv, tmp_path):
    run = _to_closed_pipe("--sandbox", "--state-dir", str(tmp_path), *argv, env={"ZTWIZARD_SANDBOX_IN_PROCESS": "1"})
    assert run.returncode == 141
    assert run.stderr == b""


def test_steps_piped_to_head_gets_a_heading_first(tmp_path):
    run = subprocess.run(f"{shlex.quote(ZTWIZARD)} steps | head -1", shell=True, capture_output=True, timeout=60)
    assert run.stdout == b"== Azure Storage ==\n" and run.stderr == b""


@pytest.mark.parametrize("fmt", ["markdown", "text"])
def test_latin1_output_gets_ascii(fmt, tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "ZTWIZARD_SANDBOX_IN_PROCESS": "1"}
    run = subprocess.run([ZTWIZARD, "--sandbox", "--state-dir", str(tmp_path), "plan", "--format", fmt,
                          "--check", "storage-1e"], capture_output=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode("ascii")  # nothing outside ASCII
    assert '~ properties.allowedCopyScope: null -> "AAD"' in text


# ---- 18: interactive apply and PUT bodies -------------------------------------------------------

def _at_terminal(argv, answer: bytes, timeout=120):
    """Run ztwizard on a pseudo-terminal, answer the first question, return (code, everything shown)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "ZTWIZARD_SANDBOX_IN_PROCESS": "1"}
    proc = subprocess.Popen([ZTWIZARD, *argv], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out, asked, end = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if not asked and b"(y/N)" in out:
                    time.sleep(0.3)
                    os.write(master, answer)
                    asked = True
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


@pytest.mark.parametrize("answer, applied", [(b"n", False), (b"y", True)])
def test_interactive_apply_shows_the_diff_before_it_asks(answer, applied, tmp_path, capsys, monkeypatch):
    state = tmp_path / "state"
    code, shown = _at_terminal(["--sandbox", "--state-dir", str(state), "apply", "--check", "storage-1e"], answer)
    assert code == 0, shown
    question = shown.index("Apply these 3 change(s) of storage-1?")
    for account in ("stcontosoappdata", "stcontosofiles", "stcontosovmdiag01"):
        assert shown.index(f"~ {account} (storageAccounts,") < question
    assert shown.index('~ properties.allowedCopyScope: null → "AAD"') < question
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    plan = _plan_json(capsys, state, "--check", "storage-1e")
    statuses = {f["status"] for s in plan["steps"] for f in s["findings"]}
    assert statuses == ({"pass"} if applied else {"fail"})


def test_put_bodies_carry_no_read_only_size_or_empty_kind(capsys, state):
    plan = _plan_json(capsys, state)
    puts = [c for s in plan["steps"] for c in s["changes"] if c["method"] == "PUT" and c["body"]]
    policies = [c for c in puts if "/firewallpolicies/" in c["resource_id"].lower() and c["action"] == "update"]
    assert policies, "the reference estate has firewall-policy updates"
    assert all("size" not in (c["body"].get("properties") or {}) for c in policies)
    assert all(c["body"].get("kind") != "" for c in puts)


def test_writable_strips_only_where_arm_computes():
    from ztwizard.armjson import writable

    policy = {"type": "Microsoft.Network/firewallPolicies", "kind": "", "etag": "x",
              "properties": {"size": "0.1 MB", "threatIntelMode": "Alert"}}
    assert writable(policy) == {"type": "Microsoft.Network/firewallPolicies",
                                "properties": {"threatIntelMode": "Alert"}}
    pool = {"type": "Microsoft.NetApp/netAppAccounts/capacityPools", "kind": "Pool", "properties": {"size": 4}}
    assert writable(pool) == pool  # a size the caller chooses, and a real kind, stay
