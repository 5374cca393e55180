"""The sandbox: an embedded stand-in for Azure Resource Manager (product.md §2), so the wizard
runs end to end with the very same azure-mgmt clients and no Azure account.

* `Sandbox(state_dir, estate, *, latency_ms, faults, read_only, seed, **knobs)` is the stateful
  ARM core (arm.py). `sb.transport()` plugs it into any client in-process
  (`Client(cred, sub, transport=sb.transport(), polling_interval=0)`; the base URL can stay the
  default or be any https host); `sb.token` / `sb.reader_token` are the bearer tokens it accepts
  (the reader gets 403 on every write). `sb.export()`, `sb.reset(estate)`, `sb.request_log`.
* `server.serve(state_dir, port, estate, ...)` puts the same core behind HTTPS on 127.0.0.1 with
  its own CA and writes `<state_dir>/sandbox/connection.json`; `server.connection_alive`,
  `server.reset`, `server.export` and `server.running` (a context manager for tests) go with it.

Files under `<state_dir>/sandbox/`: state.json (+ state.log for large estates), ca.pem,
ca-key.pem, server.pem, server-key.pem, serve.lock, connection.json (while serving). Secrets and
keys are 0600, the directory 0700."""

from __future__ import annotations

from .arm import Sandbox
from .faults import ConnectionReset

__all__ = ["Sandbox", "ConnectionReset"]
