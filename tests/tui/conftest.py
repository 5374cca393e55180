"""Fixtures for the wizard's pilot tests: a real in-process sandbox behind the real gateway.

Each test gets its own sandbox state and journal under tmp_path, so a second app built by
`make_app` in the same test sees the same ARM state and the same journal (restart, resume)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ztwizard.core import Core
from ztwizard.gateway import Gateway
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target
from ztwizard.tui import make_app as make_wizard
from ztwizard.tui.app import WizardApp

SUB = "00000000-0000-0000-0000-00000000c0de"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-storage"
ACCOUNT = f"{RG}/providers/Microsoft.Storage/storageAccounts/stwizard01"


def storage_estate() -> list[dict[str, Any]]:
    """One storage account in the lift-and-shift state: storage-1 fails in several ways."""
    return [
        {"id": RG, "name": "rg-storage", "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"},
        {"id": ACCOUNT, "name": "stwizard01", "type": "Microsoft.Storage/storageAccounts",
         "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
         "etag": '"0x8DD0C0FFEE00001"',  # fixed, so previews (If-Match) are the same on every run
         "properties": {"supportsHttpsTrafficOnly": False, "minimumTlsVersion": "TLS1_0",
                        "allowBlobPublicAccess": True, "allowSharedKeyAccess": True,
                        "networkAcls": {"defaultAction": "Allow", "bypass": "AzureServices"},
                        # customer-managed keys and infrastructure encryption already in place,
                        # so storage-1 passes once the wizard's five changes are applied
                        "encryption": {"keySource": "Microsoft.Keyvault", "requireInfrastructureEncryption": True,
                                       "keyvaultproperties": {"keyname": "cmk", "keyvaulturi":
                                                              "https://kv-wizard.vault.azure.net/"},
                                       "services": {"blob": {"enabled": True, "keyType": "Account"}}}},
         "identity": {"type": "SystemAssigned"}},
        # Defender for Storage on the Free tier (storage-4 fails until the plan is on)
        {"id": f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/StorageAccounts",
         "name": "StorageAccounts", "type": "Microsoft.Security/pricings",
         "properties": {"pricingTier": "Free"}},
    ]


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., WizardApp]:
    """Build a wizard on the test's sandbox; call again to 'restart' on the same state."""
    made: list[Core] = []

    def make(*, dry_run: bool = False, estate: Any = None, resume_session: str | None = None,
             **sandbox_kwargs: Any) -> WizardApp:
        sandbox = Sandbox(tmp_path / "sandbox", estate=estate if estate is not None else storage_estate(),
                          **sandbox_kwargs)
        gateway = Gateway(in_process_target(sandbox))
        core = Core(gateway, state_dir=tmp_path / "state", dry_run=dry_run)
        made.append(core)
        return make_wizard(core, resume_session=resume_session)

    yield make  # type: ignore[misc]
    for b in made:
        b.close()


@pytest.fixture
def messages() -> list[Any]:
    return []
