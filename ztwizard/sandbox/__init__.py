"""The sandbox: an embedded stand-in for Azure Resource Manager (product.md §2).

`Sandbox` is the stateful ARM core (in-process through `Sandbox.transport()`); `server.serve`
puts the same core behind HTTPS on 127.0.0.1; `server.reset` / `server.export` back the
`ztwizard sandbox reset|export` commands."""

from __future__ import annotations

from .arm import Sandbox
from .faults import ConnectionReset

__all__ = ["Sandbox", "ConnectionReset"]
