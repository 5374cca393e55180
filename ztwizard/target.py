"""Where ARM is: real Azure (a cloud or a custom endpoint), a sandbox, or an estate file.

A Target carries everything the gateway needs to build clients: endpoint, credential, CA bundle,
and for an in-process sandbox, the transport. Nothing here calls ARM."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .credentials import CLOUDS  # (ARM endpoint, Entra authority host) per cloud
from .errors import UsageError

# In-process sandboxes answer on this host; the transport intercepts it, nothing leaves the process.
IN_PROCESS_ENDPOINT = "https://sandbox.ztwizard.invalid"


class StaticTokenCredential:
    """A bearer token we already hold (the sandbox's). azure-core only calls get_token()."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:  # never show the token
        return "StaticTokenCredential(***)"


@dataclass
class Target:
    kind: str  # azure | sandbox | estate
    endpoint: str
    credential: Any
    ca_bundle: str | None = None
    transport: Any = None
    read_only: bool = False
    cloud: str = "AzureCloud"
    credential_scopes: list[str] | None = None
    sandbox: Any = None  # the in-process Sandbox, kept alive with the target
    label: str = ""  # what people see instead of the endpoint (the in-process host is internal)
    subscriptions: list[str] = field(default_factory=list)
    resource_groups: list[str] = field(default_factory=list)
    estate: list[dict[str, Any]] | None = None  # an offline audit's resources, loaded from its file
    management_groups: list[str] = field(default_factory=list)  # scope: every subscription under these

    def sign_in(self) -> None:
        """Get the first token now (Azure only), within the credential's deadline: no credential
        or a refused one is one SignInError before anything is read or written."""
        sign_in = getattr(self.credential, "sign_in", None)
        if self.kind == "azure" and callable(sign_in):
            sign_in(*(self.credential_scopes or [f"{self.endpoint}/.default"]))

    def describe(self) -> dict[str, Any]:
        return {"kind": "azure" if self.kind == "azure" else "sandbox", "endpoint": self.label or self.endpoint,
                "subscriptions": list(self.subscriptions)}


def azure_target(cloud: str = "AzureCloud", endpoint: str | None = None, ca_bundle: str | None = None, *,
                 auth: str = "default", auth_timeout: float | str | None = None) -> Target:
    """Real Azure (or a custom ARM endpoint): one shared credential for the whole run
    (ztwizard/credentials.py). Nothing is sent until `Target.sign_in()` or the first request."""
    from .credentials import build_credential, parse_auth_kind, parse_auth_timeout

    if cloud not in CLOUDS:
        raise UsageError(f"Unknown cloud {cloud!r}.", hint="Use AzureCloud, AzureUSGovernment or AzureChinaCloud.")
    auth, timeout = parse_auth_kind(auth), parse_auth_timeout(auth_timeout)  # bad flags before anything else
    if ca_bundle and not Path(ca_bundle).is_file():
        raise UsageError(f"CA bundle {ca_bundle} does not exist.", hint="Pass the PEM file of the endpoint's CA.")
    arm, _authority = CLOUDS[cloud]
    credential = build_credential(auth, cloud, timeout)
    base = (endpoint or arm).rstrip("/")
    return Target(kind="azure", endpoint=base, credential=credential, ca_bundle=ca_bundle, cloud=cloud,
                  credential_scopes=[f"{arm}/.default"])


def connection_file(state_dir: Path) -> Path:
    return Path(state_dir) / "sandbox" / "connection.json"


def sandbox_target(state_dir: Path, *, sandbox: Any = None, reader: bool = False, **sandbox_kwargs: Any) -> Target:
    """The sandbox named in connection.json when it is alive, else one started in-process on the
    same state (product.md §2). `sandbox` passes an already built in-process Sandbox (tests)."""
    if sandbox is None:
        conn = _alive_connection(Path(state_dir))
        if conn is not None:
            token = conn["reader_token"] if reader and conn.get("reader_token") else conn["token"]
            return Target(kind="sandbox", endpoint=conn["endpoint"], credential=StaticTokenCredential(token),
                          ca_bundle=conn["ca_bundle"])
        from .sandbox import Sandbox

        sandbox = Sandbox(Path(state_dir), **sandbox_kwargs)
    return in_process_target(sandbox, reader=reader)


def in_process_target(sandbox: Any, *, reader: bool = False, read_only: bool = False,
                      kind: str = "sandbox") -> Target:
    token = sandbox.reader_token if reader else sandbox.token
    label = "file (read-only, in-process)" if kind == "estate" else "(in-process)"
    return Target(kind=kind, endpoint=IN_PROCESS_ENDPOINT, credential=StaticTokenCredential(token),
                  transport=sandbox.transport(), sandbox=sandbox, read_only=read_only, label=label)


def estate_target(path: str) -> Target:
    """Offline audit of an estate export (or `reference`, `scale:N`): its resources, read and
    normalised once, for offline.EstateGateway to put straight into the inventory."""
    from .sandbox.estates import load_estate

    resources = load_estate(path)
    return Target(kind="estate", endpoint="", credential=None, read_only=True, estate=resources,
                  label="file (read-only, in-process)")


def _alive_connection(state_dir: Path) -> dict[str, Any] | None:
    try:
        from .sandbox.server import connection_alive
    except ImportError:  # pragma: no cover - the server module is part of the package
        return None
    conn = connection_alive(state_dir)
    if conn and os.environ.get("ZTWIZARD_SANDBOX_IN_PROCESS") != "1":
        return dict(conn)
    return None


def read_connection(state_dir: Path) -> dict[str, Any]:
    path = connection_file(state_dir)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"No running sandbox found at {path}.",
                         hint="Start one with `ztwizard sandbox serve`.") from exc
