"""Virtual machine power state: not a property of the VM but of its instance view
(`statuses[].code` PowerState/…), moved by the LRO actions deallocate, start, powerOff, restart."""

from __future__ import annotations

from typing import Any

from .lro import Operations
from .request import Reply, Request, arm_error, authorize_write, not_found
from .store import key, parse

RUNNING = "PowerState/running"
VM_ACTIONS = {"deallocate": "PowerState/deallocated", "poweroff": "PowerState/stopped",
              "start": RUNNING, "restart": RUNNING}


def instance_view(entry: dict[str, Any], power: str) -> dict[str, Any]:
    state = (entry.get("properties") or {}).get("provisioningState", "Succeeded")
    return {"statuses": [{"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                          "displayStatus": f"Provisioning {state.lower()}"},
                         {"code": power, "level": "Info",
                          "displayStatus": "VM " + power.split("/")[1]}]}


class Power(Operations):
    read_only: bool

    def power_state(self, vm_id: str) -> str:
        return self.power.get(key(vm_id), RUNNING)

    def _action(self, ctx: Request) -> Reply:
        resource_id, action = "/" + "/".join(ctx.segs[:-1]), ctx.segs[-1]
        entry = self.store.get(resource_id)
        p = parse(resource_id)
        authorize_write(ctx, self.read_only, p.type, resource_id, action=f"{action}/action")
        if entry is None:
            raise not_found(resource_id)
        if p.type.lower() != "microsoft.compute/virtualmachines" or action.lower() not in VM_ACTIONS:
            raise arm_error(400, "InvalidResourceOperation", f"The action '{action}' is not supported by the sandbox.")
        self._check_busy(entry["id"])
        before = self._snapshot([key(entry["id"])])
        self.power[key(entry["id"])] = VM_ACTIONS[action.lower()]
        ctx.dirty = True
        return self._start_op(ctx, key(entry["id"]), "location", before, delete=True, action=True)

    def _instance_view(self, ctx: Request) -> Reply:
        resource_id = "/" + "/".join(ctx.segs[:-1])
        entry = self.store.get(resource_id)
        if entry is None:
            raise not_found(resource_id)
        return Reply(200, instance_view(entry, self.power_state(entry["id"])))
