"""The engine runs without Textual, and only the gateway knows the azure-mgmt clients."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ztwizard.sandbox.estates import reference as ref

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


def test_a_plan_against_the_sandbox_imports_no_sdk_package_it_only_reads_through(tmp_path):
    """Child and subscription reads go out as raw JSON through the resources client: a plan
    builds no Security, Monitor, Storage or Compute client, and so imports none of those SDK
    packages (~0.2 s each). In a fresh process, so sys.modules holds only what the plan loaded."""
    log = tmp_path / "plan.log"
    code = (
        "import sys\n"
        "from ztwizard.cli import main\n"
        f"rc = main(['--sandbox', '--state-dir', {str(tmp_path / 'state')!r}, '--log-file', {str(log)!r},\n"
        f"           'plan', '--format', 'json', '--output', {str(tmp_path / 'plan.json')!r}])\n"
        "assert rc in (0, 2), rc\n"
        "loaded = sorted(p for p in ('security', 'monitor', 'storage', 'compute') if 'azure.mgmt.' + p in sys.modules)\n"
        "assert loaded == [], loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ZTWIZARD_SANDBOX_IN_PROCESS": "1"})
    assert out.returncode == 0, out.stderr
    sent = log.read_text()
    # the reads this is about did go out (the reference estate has each of them)
    for fragment in (f"{ref.FILES_ACCOUNT}/providers/Microsoft.Security/defenderForStorageSettings/current?",
                     f"{ref.FIREWALL}/providers/Microsoft.Insights/diagnosticSettings?",
                     f"/subscriptions/{ref.WORKLOAD_SUB}/providers/Microsoft.Insights/diagnosticSettings?",
                     f"/subscriptions/{ref.WORKLOAD_SUB}/providers/Microsoft.Security/settings?",
                     f"/subscriptions/{ref.WORKLOAD_SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies?",
                     f"/subscriptions/{ref.WORKLOAD_SUB}/providers/Microsoft.Compute/virtualMachines?",
                     f"{ref.FILES_ACCOUNT}/fileServices/default?"):
        assert fragment in sent, fragment
