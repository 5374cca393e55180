"""Shared fixtures for tests that talk to the sandbox through the real azure-mgmt clients.

    def test_x(sandbox, arm_client):
        sb = sandbox(page_size=2)                      # in-memory Sandbox on the small estate
        net = arm_client(NetworkManagementClient, sb, SUB)
        storage = arm_client(StorageManagementClient, sb, SUB, reader=True)   # the 403 principal

`arm_client` builds any client with the sandbox's in-process transport (no sockets), a static
bearer token and `polling_interval=0`; extra kwargs go to the client (`base_url=` is filled in
for the security and authorization clients, whose third positional is api_version)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken

SUB = "00000000-0000-0000-0000-0000000000a1"
SUB2 = "00000000-0000-0000-0000-0000000000b2"


class StaticCredential:
    """The smallest credential azure-core accepts: it only calls get_token()."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def _small_estate() -> list[dict[str, Any]]:
    """A few resources of every kind the sandbox composes: VNet with inline subnets, NSG with a
    rule, route table, storage account, VM with an extension, NIC, disk, pricing, role assignment."""
    rg_net = f"/subscriptions/{SUB}/resourceGroups/rg-net"
    rg_vm = f"/subscriptions/{SUB}/resourceGroups/rg-vm"
    rg_st = f"/subscriptions/{SUB}/resourceGroups/rg-st"
    net = f"{rg_net}/providers/Microsoft.Network"
    nsg = f"{net}/networkSecurityGroups/nsg-app"
    return [
        {"id": f"{rg_net}", "name": "rg-net", "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"},
        {"id": f"{net}/virtualNetworks/vnet-spoke", "location": "westeurope", "type": "Microsoft.Network/virtualNetworks",
         "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}, "subnets": [
             {"name": "app", "properties": {"addressPrefix": "10.1.1.0/24", "networkSecurityGroup": {"id": nsg}}},
             {"name": "data", "properties": {"addressPrefix": "10.1.2.0/24"}}]}},
        {"id": nsg, "location": "westeurope", "properties": {"securityRules": [
            {"name": "allow-ssh", "properties": {"priority": 100, "direction": "Inbound", "access": "Allow",
                                                  "protocol": "Tcp", "sourcePortRange": "*",
                                                  "destinationPortRange": "22", "sourceAddressPrefix": "*",
                                                  "destinationAddressPrefix": "*"}}]}},
        {"id": f"{net}/routeTables/rt-app", "location": "westeurope", "properties": {"routes": []}},
        {"id": f"{net}/publicIPAddresses/pip-1", "location": "westeurope", "sku": {"name": "Standard"},
         "properties": {"publicIPAllocationMethod": "Static"}},
        {"id": f"{rg_st}/providers/Microsoft.Storage/storageAccounts/stblob01", "location": "westeurope",
         "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
         "properties": {"minimumTlsVersion": "TLS1_0", "allowBlobPublicAccess": True,
                        "networkAcls": {"defaultAction": "Allow", "bypass": "AzureServices"}}},
        {"id": f"{rg_vm}/providers/Microsoft.Network/networkInterfaces/nic-web", "location": "westeurope",
         "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
             "subnet": {"id": f"{net}/virtualNetworks/vnet-spoke/subnets/app"}}}]}},
        {"id": f"{rg_vm}/providers/Microsoft.Compute/virtualMachines/vm-web", "location": "westeurope",
         "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"},
                        "networkProfile": {"networkInterfaces": [
                            {"id": f"{rg_vm}/providers/Microsoft.Network/networkInterfaces/nic-web"}]}}},
        {"id": f"{rg_vm}/providers/Microsoft.Compute/virtualMachines/vm-web/extensions/AzureMonitorLinuxAgent",
         "location": "westeurope", "properties": {"publisher": "Microsoft.Azure.Monitor",
                                                  "type": "AzureMonitorLinuxAgent", "typeHandlerVersion": "1.0"}},
        {"id": f"{rg_vm}/providers/Microsoft.Compute/disks/disk-web-os", "location": "westeurope",
         "sku": {"name": "Premium_LRS"}, "properties": {"diskSizeGB": 64, "networkAccessPolicy": "AllowAll"}},
        {"id": f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/VirtualMachines",
         "properties": {"pricingTier": "Free"}},
        {"id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/"
               "11111111-1111-1111-1111-111111111111",
         "properties": {"roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                            "roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
                        "principalId": "22222222-2222-2222-2222-222222222222", "principalType": "User",
                        "scope": f"/subscriptions/{SUB}"}},
        {"id": f"/subscriptions/{SUB2}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub",
         "location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}},
    ]


@pytest.fixture
def small_estate() -> list[dict[str, Any]]:
    """A fresh copy of the small estate (subscriptions SUB and SUB2 above)."""
    return _small_estate()


@pytest.fixture
def sandbox() -> Callable[..., Any]:
    """Factory: `sandbox(state_dir=None, estate=<the small estate>, **knobs)` -> a Sandbox."""
    from ztwizard.sandbox import Sandbox

    def make(state_dir: Any = None, estate: Any = None, **kw: Any) -> Any:
        return Sandbox(state_dir, estate=_small_estate() if estate is None else estate, **kw)

    return make


@pytest.fixture
def arm_client() -> Callable[..., Any]:
    """Factory: `arm_client(ClientClass, sb, *args, reader=False, transport=None, **kw)`."""

    def make(cls: Any, sb: Any, *args: Any, reader: bool = False, transport: Any = None, **kw: Any) -> Any:
        token = sb.reader_token if reader else sb.token
        module = cls.__module__
        if module.startswith(("azure.mgmt.security", "azure.mgmt.authorization")):
            kw.setdefault("base_url", "https://management.azure.com")
        kw.setdefault("polling_interval", 0)
        return cls(StaticCredential(token), *args, transport=transport or sb.transport(), **kw)

    return make


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`figure("bad inputs clean: 87/87")`: a line for the run's summary. Printing from a test
    shows nothing under xdist (a worker's output is not the terminal); a test's user_properties
    travel with its report to the process that writes the summary."""

    def record(line: str) -> None:
        request.node.user_properties.append(("figure", line))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = [value for reports in terminalreporter.stats.values() for r in reports
             if getattr(r, "when", None) == "call"
             for name, value in getattr(r, "user_properties", ()) if name == "figure"]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
