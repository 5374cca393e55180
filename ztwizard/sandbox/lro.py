"""Long-running operations: the monitors a write answers with, how it settles (after `lro_polls`
InProgress answers or `lro_seconds`, whichever is first), and injected outcomes: `lro-fail`
rolls the write back when the operation settles (the resource is as it was before the request,
etag included) and reports Failed; `lro-hang` never settles, or settles after `lro_hang_seconds`,
and keeps the resource busy (409 AnotherOperationInProgress) meanwhile."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

from .faults import Faults
from .model import clone, compose, parse
from .persistence import Persistence
from .request import Reply, Request, arm_error, not_found
from .store import key


class Operations(Persistence):
    faults: Faults
    lro_polls: int
    lro_seconds: float
    lro_hang_seconds: float | None
    retry_after: int

    def _start_op(self, ctx: Request, rkey: str, kind: str, before: dict[str, Any], *, created: bool = False,
                  delete: bool = False, action: bool = False, extra: dict[str, Any] | None = None) -> Reply:
        op_id = uuid.uuid4().hex
        outcome = self.faults.for_operation() if self.faults else None
        op = {"id": op_id, "rid": rkey, "kind": kind, "delete": delete, "action": action,
              "polls_left": self.lro_polls, "created": time.time(), "outcome": outcome or "ok",
              "status": "InProgress", "before": before, "error": None, **(extra or {})}
        self.ops[op_id] = op
        self._ops_changed.add(op_id)
        version = quote(ctx.api_version, safe='')
        monitor = f"{ctx.host}/sandbox/operations/{op_id}?api-version={version}"
        headers = {"Retry-After": str(self.retry_after)}
        if kind == "location":
            headers["Location"] = monitor
            return Reply(202, None, headers)
        if kind == "async-location":  # both monitors: the status, and the result (final-state-via location)
            headers["Azure-AsyncOperation"] = monitor
            headers["Location"] = f"{ctx.host}/sandbox/operationResults/{op_id}?api-version={version}"
            return Reply(202, None, headers)
        headers["Azure-AsyncOperation"] = monitor
        entry = self.store.entries.get(rkey)
        body = compose(self.store, entry) if entry else None
        status = 201 if created else 200
        return Reply(status, body, headers)

    def _snapshot(self, keys: list[str]) -> dict[str, Any]:
        """Before-images of the entries a write touches: what `lro-fail` puts back."""
        return {k: clone(self.store.entries.get(k)) for k in keys}

    def _check_busy(self, resource_id: str) -> None:
        p = parse(resource_id)
        keys = {key(resource_id)}
        if p.parent:
            keys.add(key(p.parent))
        for op in self.ops.values():
            if op["status"] == "InProgress" and op["rid"] in keys:
                raise arm_error(409, "AnotherOperationInProgress",
                                f"Operation on '{resource_id}' cannot be performed because another operation "
                                f"({op['id']}) on '{op['rid']}' is still in progress.")

    def _settle_due(self) -> None:
        now = time.time()
        for op in list(self.ops.values()):
            if op["status"] != "InProgress":
                continue
            if op["outcome"] == "lro-hang":
                if self.lro_hang_seconds is not None and now - op["created"] >= self.lro_hang_seconds:
                    op["outcome"] = "ok"
                    self._finish(op)
            elif now - op["created"] >= self.lro_seconds:
                self._finish(op)

    def _finish(self, op: dict[str, Any]) -> None:
        if op["outcome"] == "lro-fail":
            for k, old in op["before"].items():
                if old is None:
                    self.store.delete(k)
                else:
                    self.store.put(clone(old))
            if op.get("action"):  # the VM is left in the power state it had
                if op.get("power_before"):
                    self.power[op["rid"]] = op["power_before"]
                else:
                    self.power.pop(op["rid"], None)
            op["status"] = "Failed"
            op["error"] = {"code": "InternalOperationError",
                           "message": "The operation failed (sandbox fault injection: lro-fail); the resource "
                                      "was left as it was before the request."}
        else:
            entry = self.store.entries.get(op["rid"])
            if entry is not None and not op["delete"]:
                props = entry.setdefault("properties", {})
                if props.get("provisioningState") in ("Creating", "Updating"):
                    props["provisioningState"] = "Succeeded"
            op["status"] = "Succeeded"
        op["before"] = {}
        op["ended"] = time.time()
        self._ops_changed.add(op["id"])
        self._dirty = True

    def _monitor(self, ctx: Request) -> Reply:
        op_id = ctx.segs[2]
        op = self.ops.get(op_id)
        if op is None:
            raise arm_error(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op["status"] == "InProgress" and op["outcome"] != "lro-hang":
            op["polls_left"] -= 1
            self._ops_changed.add(op_id)
            self._dirty = True
            if op["polls_left"] < 0:
                self._finish(op)
        retry = {"Retry-After": str(self.retry_after)}
        # an operation with both monitors answers its status at operations/, its result at operationResults/
        status_view = op["kind"] == "async" or (op["kind"] == "async-location" and ctx.low[1] == "operations")
        if status_view:
            body: dict[str, Any] = {"id": f"{ctx.path}", "name": op_id, "status": op["status"]}
            if op["error"]:
                body["error"] = op["error"]
            return Reply(200, body, retry if op["status"] == "InProgress" else {})
        if op["status"] == "InProgress":
            return Reply(202, None, {**retry, "Location": f"{ctx.host}{ctx.path}?api-version="
                                                             f"{quote(ctx.api_version, safe='')}"})
        if op["status"] == "Failed":
            return Reply(400, {"error": op["error"]})
        if op["delete"]:
            return Reply(200 if op.get("action") else 204)
        entry = self.store.entries.get(op["rid"])
        if entry is None:
            raise not_found(op["rid"])
        return Reply(200, compose(self.store, entry))
