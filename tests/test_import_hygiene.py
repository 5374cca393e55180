"""The engine runs without Textual, and only the gateway knows the azure-mgmt clients."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "ztwizard"
HEADLESS = ["ztwizard.cli", "ztwizard.engine", "ztwizard.gateway", "ztwizard.report", "ztwizard.journal",
            "ztwizard.apply", "ztwizard.undo", "ztwizard.resume", "ztwizard.sandbox", "ztwizard.steps"]


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module):
    code = f"import sys, {module}; assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_only_the_gateway_imports_azure_mgmt():
    offenders = []
    for path in PKG.rglob("*.py"):
        if path.name == "gateway.py" and path.parent == PKG:
            continue
        if re.search(r"^\s*(from|import)\s+azure\.mgmt", path.read_text(), re.M):
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == []


def test_only_the_tui_imports_textual():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                 if "tui" not in p.relative_to(PKG).parts
                 and re.search(r"^\s*(from|import)\s+textual", p.read_text(), re.M)]
    assert offenders == []
