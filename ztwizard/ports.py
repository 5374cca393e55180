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
                  progress: Progress | None = None, *, reads: Sequence[ChildRead] | None = None) -> Inventory:
        """The scope's resources; children only where `reads` says a check needs them (None: all)."""
        ...

    def list_subscriptions(self) -> list[str]: ...

    def subscription_names(self) -> list[tuple[str, str]]:
        """(id, display name) of every subscription the credential can see."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...
