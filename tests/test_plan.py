"""`ztwizard plan` end to end on the sandbox: the plan JSON contract, reports, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ztwizard.cli import main
from ztwizard.sandbox import Sandbox
from ztwizard.steps import CHECK_BY_ID, STEPS

DATA = Path(__file__).parent / "data"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "state")


def test_reference_plan_json_lists_every_step_with_findings(capsys, state):
    code, out, err = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["schema"] == "ztwizard.plan/v1"
    assert plan["target"]["kind"] == "sandbox" and len(plan["target"]["subscriptions"]) == 2
    assert [s["id"] for s in plan["steps"]] == [s.id for s in STEPS] and len(plan["steps"]) == 23
    assert plan["summary"]["steps"] == 23
    assert plan["summary"]["changes"] == sum(len(s["changes"]) for s in plan["steps"]) > 0
    for step in plan["steps"]:
        assert step["findings"], step["id"]
        assert any(f["status"] in ("fail", "manual") for f in step["findings"]), step["id"]
        for ch in step["changes"]:
            assert ch["api_version"] and ch["method"] in ("PUT", "PATCH", "DELETE")
            assert ch["action"] in ("update", "create", "delete")
            assert ch["check"] in CHECK_BY_ID
    assert {f["status"] for s in plan["steps"] for f in s["findings"]} >= {"pass", "fail", "manual"}


def test_steps_json_names_every_check_of_the_catalog(capsys):
    code, out, _ = run_cli(capsys, "steps", "--format", "json")
    assert code == 0
    ids = {c["id"] for s in json.loads(out) for c in s["checks"]}
    spec = (Path(__file__).resolve().parents[2] / "shared" / "spec" / "steps.md")
    if spec.exists():
        import re

        wanted = set(re.findall(r"^\| ((?:storage|vm|spoke|hub)-\d[a-z]) \|", spec.read_text(), re.M))
        assert wanted and wanted <= ids
    assert len(ids) == len(CHECK_BY_ID) >= 80


def test_step_and_check_filters(capsys, state):
    code, out, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--check", "storage-1b",
                           "--step", "hub-3", "--format", "json")
    assert code == 0
    plan = json.loads(out)
    assert [s["id"] for s in plan["steps"]] == ["storage-1", "hub-3"]
    assert {f["check"] for f in plan["steps"][0]["findings"]} == {"storage-1b"}
    assert {f["check"][:5] for f in plan["steps"][1]["findings"]} == {"hub-3"}


def test_sarif_validates_against_the_2_1_0_schema(capsys, state, tmp_path):
    out_file = tmp_path / "plan.sarif"
    code, _, err = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--format", "sarif",
                           "--output", str(out_file))
    assert code == 0, err
    sarif = json.loads(out_file.read_text())
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    rule_ids = [r["id"] for r in run["rules"]] if "rules" in run else [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert run["results"] and all(r["ruleId"] in rule_ids for r in run["results"])
    assert all(r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].startswith("/subscriptions/")
               for r in run["results"])


def test_markdown_and_text_reports_read_like_reports(capsys, state):
    code, md, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--format", "markdown")
    assert code == 0
    assert md.startswith("# Zero Trust hardening plan")
    assert "## Azure Storage" in md and "### hub-4:" in md and "| Check | Resource |" in md
    code, text, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--step", "storage-1")
    assert code == 0
    assert "storage-1b" in text and "TLS1_2" in text


def test_estate_file_is_audited_offline_and_read_only(capsys, tmp_path):
    estate = tmp_path / "estate.json"
    sb = Sandbox(None, estate="reference")
    estate.write_text(json.dumps(sb.export()))
    code, out, err = run_cli(capsys, "--state-dir", str(tmp_path / "s"), "--estate", str(estate), "plan",
                             "--format", "json", "--step", "storage-1")
    assert code == 0, err
    assert json.loads(out)["steps"][0]["status"] == "fail"
    bad = tmp_path / "bad.json"
    bad.write_text('{"value": [{"name": "no id"}]}')
    code, _, err = run_cli(capsys, "--estate", str(bad), "plan")
    assert code == 2 and "entry 0" in err.lower() and "Traceback" not in err


def test_detailed_exitcode_2_on_reference_and_0_once_compliant(capsys, tmp_path):
    """The proposals lead somewhere: applying them (through the real apply command) until
    nothing is proposed leaves only failures a person must fix, so the exit code stays 2 (the
    estate still does not comply); the checks the wizard fixed alone exit 0."""
    state = str(tmp_path / "state")
    code, _, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--detailed-exitcode")
    assert code == 2
    rounds, changes = 0, 1
    while changes and rounds < 4:
        rounds += 1
        code, out, err = run_cli(capsys, "--state-dir", state, "--sandbox", "apply", "--yes",
                                 "--allow-disruptive", "--allow-cost")
        assert code == 0, out + err
        code, out, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--format", "json")
        plan = json.loads(out)
        # a change waiting for a parameter (which Key Vault key) is not one apply can make alone
        changes = sum(1 for st in plan["steps"] for c in st["changes"] if "" not in c["params"].values())
    assert changes == 0 and rounds <= 3
    assert plan["summary"]["error"] == 0  # what is left is a person's work or passing, never an error
    waiting = [c for st in plan["steps"] for c in st["changes"]]
    assert {c["check"] for c in waiting} == {"storage-1g", "vm-4a"}
    assert all(c["params"]["keyVaultId"] == "" and c["params"]["keyName"] == "" for c in waiting)
    left = [f for s in plan["steps"] for f in s["findings"] if f["status"] == "fail"
            and f["check"] not in ("storage-1g", "vm-4a")]
    assert left and all(f["remediation"] == "manual" and f["message"] for f in left)
    code, _, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--detailed-exitcode")
    assert code == 2  # a failure a person must fix is pending work, not "nothing to change"
    code, _, _ = run_cli(capsys, "--state-dir", state, "--sandbox", "plan", "--detailed-exitcode",
                         "--check", "storage-1b", "--check", "vm-8a")
    assert code == 0
