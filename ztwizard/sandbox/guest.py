"""What a VM's guest agent reports in `GET {vm}/instanceView`, as ARM relays it.

ARM fills `vmAgent` from the agent running inside the guest: a running VM deployed with the agent
reports it Ready; a deallocated or stopped VM, or one deployed without the agent
(`osProfile.*Configuration.provisionVMAgent = false`), reports no agent at all."""

from __future__ import annotations

from typing import Any

AGENT_VERSION = "2.7.41491.1102"


def vm_agent(entry: dict[str, Any], power: str) -> dict[str, Any] | None:
    """The instance view's `vmAgent` for a VM in `power` (e.g. PowerState/running), or None."""
    if power.lower() != "powerstate/running":
        return None
    os_profile = (entry.get("properties") or {}).get("osProfile") or {}
    for cfg in ("windowsConfiguration", "linuxConfiguration"):
        if (os_profile.get(cfg) or {}).get("provisionVMAgent") is False:
            return None
    return {"vmAgentVersion": AGENT_VERSION, "statuses": [{
        "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
        "message": "Guest Agent is running"}]}
