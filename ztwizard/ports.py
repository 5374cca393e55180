"""What the engine, apply, undo, resume and the core need from ARM: the `ArmGateway` protocol.

`gateway.Gateway` is the one implementation (through the azure-mgmt clients); naming the
protocol here keeps those modules typed without importing the SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .inventory import Inventory
from .target import Target

Progress = Callable[[int, int, str], None]


class ChildRead(Protocol):
    """A child read a check declares (steps' `Read`): `child` of each `of` resource it is needed for."""

    @property
    def child(self) -> str: ...

    @property
    def of(self) -> str: ...

    def needed(self, parent: dict[str, Any], inv: Inventory) -> bool: ...


class ArmGateway(Protocol):
    """All ARM traffic for one target."""

    @property
    def target(self) -> Target: ...

    def api_version_for(self, resource_id: str) -> str: ...

    def read(self, resource_id: str) -> dict[str, Any] | None:
        """The resource as ARM holds it now (with its etag), or None when it does not exist."""
        ...

    def read_settled(self, resource_id: str, timeout: float = ...) -> dict[str, Any] | None:
        """The resource once no operation is running on it (None when it does not exist)."""
        ...

    def write(self, method: str, resource_id: str, body: dict[str, Any] | None, *,
              etag: str | None = None) -> dict[str, Any] | None:
        """PUT, PATCH or DELETE one resource and wait for ARM to finish (If-Match when `etag`)."""
        ...

    def inventory(self, subscriptions: Iterable[str] | None = None, resource_groups: Iterable[str] | None = None,
                  progress: Progress | None = None, use_graph: bool = True, *,
                  reads: Sequence[ChildRead] | None = None) -> Inventory:
        """Everything the catalog reads in the scope; `use_graph=False` reads ARM itself (list
        calls and GETs), never Resource Graph, which lags writes. Children only where `reads`
        says a selected check needs them (None: every child the catalog knows)."""
        ...

    def power_state(self, vm_id: str) -> str:
        """`running`, `deallocated`, `stopped`, a transition (`deallocating`, …) or `unknown`."""
        ...

    def vm_action(self, vm_id: str, action: str) -> None:
        """`deallocate`, `start` or `powerOff` a VM, waiting for the operation."""
        ...

    def feature_state(self, subscription: str, namespace: str, name: str) -> str | None:
        """A subscription feature's state (`Registered`, …), None when unknown."""
        ...

    def sku_capabilities(self, subscription: str, location: str, size: str) -> dict[str, str] | None:
        """A VM size's capabilities in a region, None when unknown."""
        ...

    def list_subscriptions(self) -> list[str]: ...

    def subscription_names(self) -> list[tuple[str, str]]:
        """(id, display name) of every subscription the credential can see."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...
