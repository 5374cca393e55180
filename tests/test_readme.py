"""The README tells the truth: its feature table is the catalog's, and CI runs its test command."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_feature_table_matches_the_catalog():
    spec = importlib.util.spec_from_file_location("feature_table", ROOT / "scripts" / "feature_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.table() in readme, "run scripts/feature_table.py --write"
    for step in ("storage-1", "vm-8", "spoke-7", "hub-4"):
        assert f"| `{step}` |" in readme


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in readme.splitlines() if line.endswith(".venv/bin/pytest"))
    assert command in ci
