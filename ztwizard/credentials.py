"""Signing in to Azure: one credential per run, an overall deadline, one token per scope.

`build_credential(auth, cloud, timeout)` builds the azure-identity credential `--auth` names and
wraps it in a `SharedCredential` that every client of the run shares:

* tokens are cached per scope until 5 minutes before they expire (AzureCliCredential caches
  nothing: without this, every client would start its own `az` subprocess);
* every acquisition runs against the deadline (`--auth-timeout`, default 20 s), in a daemon
  thread, so a silent managed-identity endpoint or a stuck `az` cannot hang the run; while a
  person is entering a device code the deadline waits for the code's own expiry instead;
* a failure becomes one `SignInError` sentence with a hint, remembered for the run, so the next
  client fails at once instead of signing in again.

azure-identity logs every failed attempt of its chain as a warning; ztwizard/logs.py keeps those
lines off stderr unless `--debug` (and sends them to `--log-file`)."""

from __future__ import annotations

import configparser
import os
import re
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import UsageError, ZtwError

AUTH_KINDS = ("default", "cli", "device-code", "managed-identity", "env")
DEFAULT_TIMEOUT = 20.0
TIMEOUT_RANGE = (1.0, 600.0)
CLOUDS: dict[str, tuple[str, str]] = {
    # name: (ARM endpoint, Entra authority host)
    "AzureCloud": ("https://management.azure.com", "login.microsoftonline.com"),
    "AzureUSGovernment": ("https://management.usgovcloudapi.net", "login.microsoftonline.us"),
    "AzureChinaCloud": ("https://management.chinacloudapi.cn", "login.chinacloudapi.cn"),
}

REFRESH_MARGIN = 300  # seconds before expiry a cached token is renewed (azure-core uses the same window)



class SignInError(ZtwError):
    """No credential, a credential refused, or no answer within the deadline (exit 1)."""


def parse_auth_timeout(value: Any) -> float:
    """`--auth-timeout SECONDS`, range-checked; None gives the default."""
    if value is None:
        return DEFAULT_TIMEOUT
    low, high = TIMEOUT_RANGE
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not low <= seconds <= high:  # also false for nan
        raise UsageError(f"--auth-timeout must be a number of seconds from {low:g} to {high:g}, not {value!r}.",
                         hint=f"The default is {DEFAULT_TIMEOUT:g}; raise it for a slow network or a slow az CLI.")
    return seconds


def parse_auth_kind(value: Any) -> str:
    kind = value or "default"
    if kind not in AUTH_KINDS:
        raise UsageError(f"Unknown sign-in kind {kind!r} for --auth.", hint=f"Use one of {', '.join(AUTH_KINDS)}.")
    return str(kind)


def cli_active_cloud(environ: Any = None) -> str | None:
    """The az CLI's active cloud as its config file holds it (`az cloud show` reads the same
    file), without running az; None when the CLI has never been configured on this machine."""
    env = os.environ if environ is None else environ
    config_dir = Path(env.get("AZURE_CONFIG_DIR") or Path(env.get("HOME") or Path.home()) / ".azure")
    if not config_dir.is_dir():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(config_dir / "config", encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser.get("cloud", "name", fallback="AzureCloud").strip() or "AzureCloud"


def cloud_set_hint(cloud: str) -> str:
    return f"Run `az cloud set --name {cloud}` and `az login` (the CLI signs in to one cloud at a time)."


def build_credential(auth: str = "default", cloud: str = "AzureCloud", timeout: float = DEFAULT_TIMEOUT, *,
                     stderr: Any = None) -> SharedCredential:
    """The credential `--auth` names, for `--cloud`, wrapped for the run (see the module doc).
    Builds nothing that talks to the network; the first token request signs in."""
    auth, timeout = parse_auth_kind(auth), parse_auth_timeout(timeout)
    if cloud not in CLOUDS:
        raise UsageError(f"Unknown cloud {cloud!r}.", hint="Use AzureCloud, AzureUSGovernment or AzureChinaCloud.")
    # AZURE_AUTHORITY_HOST (azure-identity's own knob) names a private authority; else the cloud's.
    authority = os.environ.get("AZURE_AUTHORITY_HOST") or CLOUDS[cloud][1]
    # MSAL checks an authority it does not know against the public cloud's discovery endpoint;
    # a private authority (an air-gapped or test Entra) must not leave for it.
    private_authority = authority.removeprefix("https://").rstrip("/") not in {h for _, h in CLOUDS.values()}
    cli_cloud = cli_active_cloud()
    cli_mismatch = cli_cloud is not None and cli_cloud != cloud
    whole_seconds = max(1, int(timeout))  # subprocess timeouts of the CLI credentials, in seconds
    shared = SharedCredential(None, auth=auth, cloud=cloud, timeout=timeout,
                              cli_cloud=cli_cloud if cli_mismatch else None, stderr=stderr)
    import azure.identity as identity

    inner: Any
    if auth == "cli":
        if cli_mismatch:  # AzureCliCredential ignores `authority`: it follows the CLI's cloud
            raise SignInError(f"The az CLI's active cloud is {cli_cloud}, but --cloud is {cloud}.",
                              hint=cloud_set_hint(cloud) + f" Or pass --cloud {cli_cloud}.")
        inner = identity.AzureCliCredential(process_timeout=whole_seconds)
    elif auth == "device-code":
        kwargs: dict[str, Any] = {"authority": authority, "prompt_callback": shared.device_code_prompt}
        if os.environ.get("AZURE_TENANT_ID"):
            kwargs["tenant_id"] = os.environ["AZURE_TENANT_ID"]
        if private_authority:
            kwargs["disable_instance_discovery"] = True
        inner = identity.DeviceCodeCredential(**kwargs)
    elif auth == "managed-identity":  # the identity endpoint is local: no authority to set
        inner = identity.ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID") or None)
    elif auth == "env":
        inner = identity.EnvironmentCredential(authority=authority,
                                               **({"disable_instance_discovery": True} if private_authority else {}))
    else:
        # A token for another cloud would only earn 401s: leave a mismatched CLI out of the chain.
        inner = identity.DefaultAzureCredential(authority=authority, process_timeout=whole_seconds,
                                                exclude_interactive_browser_credential=True,
                                                exclude_cli_credential=cli_mismatch)
    shared.inner = inner
    return shared


def _now() -> float:
    return time.time()


class SharedCredential:
    """One credential for every client of a run: tokens cached per scope, each acquisition
    bounded by the deadline, failures turned into one SignInError (see the module doc)."""

    def __init__(self, inner: Any, *, auth: str = "default", cloud: str = "AzureCloud",
                 timeout: float = DEFAULT_TIMEOUT, cli_cloud: str | None = None, stderr: Any = None) -> None:
        self.inner = inner
        self.auth = auth
        self.cloud = cloud
        self.timeout = timeout
        self.cli_cloud = cli_cloud  # the CLI's cloud when it differs from `cloud`
        self._stderr = stderr
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}
        self._tokens: dict[Any, Any] = {}  # key -> AccessTokenInfo
        self._failure: SignInError | None = None
        self._person_until = 0.0  # a device code is showing: wait for the person until then
        self.acquisitions = 0  # tokens actually requested from the inner credential

    def __repr__(self) -> str:  # never show tokens
        return f"SharedCredential(auth={self.auth!r}, cloud={self.cloud!r})"

    # ---- the azure-core credential protocols ---------------------------------------------------
    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        options: dict[str, Any] = {"enable_cae": enable_cae}
        if claims:
            options["claims"] = claims
        if tenant_id:
            options["tenant_id"] = tenant_id
        info = self._token(scopes, options)
        return AccessToken(info.token, int(info.expires_on))

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return self._token(scopes, dict(options or {}))

    def sign_in(self, *scopes: str) -> None:
        """Acquire the first token now, so a missing or refused sign-in stops the run before it
        reads or writes anything."""
        self._token(scopes, {})

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    # ---- cache -------------------------------------------------------------------------------
    def _token(self, scopes: tuple[str, ...], options: dict[str, Any]) -> Any:
        key = (tuple(sorted(scopes)), options.get("tenant_id"), bool(options.get("enable_cae")))
        with self._lock:
            if self._failure is not None:
                raise self._failure
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # concurrent clients wait for the one acquisition of their scope
            cached = self._tokens.get(key)
            if cached is not None and not options.get("claims") and _fresh(cached):
                return cached
            with self._lock:
                if self._failure is not None:
                    raise self._failure
            try:
                info = self._acquire(scopes, options)
            except SignInError as exc:
                with self._lock:
                    self._failure = exc
                raise
            self._tokens[key] = info
            return info

    def _acquire(self, scopes: tuple[str, ...], options: dict[str, Any]) -> Any:
        from azure.core.credentials import AccessTokenInfo

        def request() -> Any:
            if hasattr(self.inner, "get_token_info"):
                return self.inner.get_token_info(*scopes, options=options or None)
            token = self.inner.get_token(*scopes, **options)
            return AccessTokenInfo(token.token, int(token.expires_on))

        self.acquisitions += 1
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["value"] = request()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        # A daemon thread: if the credential never answers, the process can still exit.
        threading.Thread(target=run, name="ztwizard-sign-in", daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not done.wait(max(0.0, deadline - time.monotonic())):
            person = self._person_until - _now()
            if person > 0:  # a device code is showing: its expiry bounds the wait, not ours
                deadline = time.monotonic() + person + self.timeout
                continue
            raise self._timed_out()
        if "error" in box:
            raise describe_failure(box["error"], self) from box["error"]
        return box["value"]

    # ---- device code -------------------------------------------------------------------------
    def device_code_prompt(self, verification_uri: str, user_code: str, expires_on: datetime) -> None:
        """DeviceCodeCredential's prompt, on stderr (stdout may be a plan being piped)."""
        self._person_until = expires_on.timestamp()
        out = self._stderr or sys.stderr
        out.write(f"To sign in, open {verification_uri} in any browser and enter the code {user_code} "
                  f"(valid until {expires_on.astimezone().strftime('%H:%M')}).\n")
        out.flush()

    # ---- failures ----------------------------------------------------------------------------
    def _timed_out(self) -> SignInError:
        what = {
            "default": "the credential chain (environment, managed identity, az CLI, …)",
            "cli": "the az CLI",
            "device-code": "Microsoft Entra ID",
            "managed-identity": "the managed-identity endpoint",
            "env": "Microsoft Entra ID",
        }[self.auth]
        hint = ("A silent managed-identity endpoint is the usual cause; choose a credential with "
                "--auth cli|device-code|env, or raise --auth-timeout.") if self.auth in ("default", "managed-identity") \
            else "Check the network (or the az CLI); raise --auth-timeout if it is only slow."
        return SignInError(f"Signing in (--auth {self.auth}) got no answer from {what} within {self.timeout:g} s.",
                           hint=hint)


def _fresh(info: Any) -> bool:
    now = _now()
    refresh_on = getattr(info, "refresh_on", None)
    return bool(now < info.expires_on - REFRESH_MARGIN and (not refresh_on or now < refresh_on))


_AADSTS = re.compile(r"(AADSTS\d+)[:\s]+([^\r\n]*?)(?:\.\s|\.$|[\r\n]|$)")


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return line.rstrip(".")
    return ""


def describe_failure(exc: BaseException, cred: SharedCredential | None = None) -> SignInError:
    """An azure-identity failure as one sentence and a hint, by what the person can do about it."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    if isinstance(exc, SignInError):
        return exc
    auth = cred.auth if cred else "default"
    cloud = cred.cloud if cred else "AzureCloud"
    text = str(getattr(exc, "message", "") or exc)
    ssh = "`az login --use-device-code` or --auth device-code work over SSH"
    aadsts = _AADSTS.search(text)
    if aadsts:  # Entra answered and refused: its code says why
        return SignInError(f"Microsoft Entra ID refused the sign-in (--auth {auth}): {aadsts.group(1)} "
                           f"{aadsts.group(2).rstrip('.')}.",
                           hint="Check the account, tenant and secret or certificate; --debug shows the full answer.")
    if cred is not None and cred.cli_cloud and auth == "default":
        return SignInError(f"No Azure credential was found for {cloud}; the az CLI is signed in to {cred.cli_cloud} "
                           "and was left out.", hint=cloud_set_hint(cloud))
    if auth == "cli":
        if "not found on path" in text.lower():
            return SignInError("The az CLI is not installed or not on PATH (--auth cli).",
                               hint="Install the Azure CLI and run `az login`, or choose another --auth "
                                    "(device-code works over SSH).")
        if "az login" in text:
            return SignInError("The az CLI is not signed in (--auth cli).",
                               hint=f"Run `az login` ({ssh}).")
        return SignInError(f"The az CLI gave no token (--auth cli): {_first_line(text) or 'it failed'}.",
                           hint=f"Run `az account get-access-token` to see why; `az login` signs in again ({ssh}).")
    if auth == "env":
        return SignInError("The AZURE_* variables of a service principal are not set (--auth env).",
                           hint="Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
                                "(or AZURE_CLIENT_CERTIFICATE_PATH).")
    if auth == "managed-identity":
        return SignInError("No managed identity is available on this machine (--auth managed-identity).",
                           hint="Run on an Azure VM or service with a managed identity, or choose another --auth.")
    if auth == "device-code":
        return SignInError(f"The device-code sign-in did not complete: {_first_line(text) or 'no token'}.",
                           hint="Run it again and enter the code before it expires; --debug shows Entra's answer.")
    if isinstance(exc, (CredentialUnavailableError, ClientAuthenticationError)):
        return SignInError("No Azure credential was found (AZURE_* variables, managed identity, az CLI, "
                           "Azure PowerShell and azd were tried).",
                           hint=f"Run `az login` ({ssh}); --debug lists each attempt.")
    return SignInError(f"Signing in failed (--auth {auth}): {exc.__class__.__name__}: {_first_line(text)}.",
                       hint="Re-run with --debug for details.")

