"""The one redaction module: secrets out of everything the wizard stores or prints.

The journal's before-images, plan outputs (text, json, markdown, SARIF) and log records all go
through here. A secret is known by its key (`commandToExecute`, `protectedSettings`, `keys`,
`*password*`, …) or by its value (a connection string, a SAS signature, a JWT, a private key),
and is replaced by REDACTED. Booleans stay (`allowSharedKeyAccess` is a setting, not a secret)."""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "<redacted>"

# Keys whose value is a secret (compared case-insensitively, exact).
SECRET_KEYS = frozenset({
    "keys", "key", "primarykey", "secondarykey", "primaryconnectionstring",
    "secondaryconnectionstring", "adminpassword", "password", "customdata", "protectedsettings",
    "protectedsettingsfromkeyvault", "sastoken", "sas", "secret", "clientsecret", "token",
    "accesstoken", "refreshtoken", "privatekey", "sharedkey", "accountkey", "storageaccountkey",
    "authorizationkey", "credentials", "sharedaccesskey", "userdata",
    # Extension settings that carry credentials as often as not (CustomScript, RunCommand).
    "commandtoexecute", "script",
})
# Key fragments that mark a secret wherever they occur in a key name.
SECRET_FRAGMENTS = ("password", "secret", "connectionstring", "sastoken", "privatekey",
                    "accountkey", "sharedaccesskey", "protectedsetting", "apikey", "accesskey")
# Values that are secrets whatever their key is called.
SECRET_VALUES = (
    re.compile(r"AccountKey=", re.I),
    re.compile(r"SharedAccessSignature=", re.I),
    re.compile(r"SharedAccessKey=", re.I),
    re.compile(r"(?:^|[?&;])sig=[^&\s]+", re.I),
    re.compile(r"(?:^|;)\s*(?:password|pwd)\s*=", re.I),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # a JWT
    re.compile(r"^Bearer\s", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
# The same secrets inside free text (a message, a log line): only the secret part goes.
_IN_TEXT = (
    re.compile(r"((?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)\s*=\s*)[^;\s\"']+", re.I),
    re.compile(r"([?&]sig=)[^&\s\"']+", re.I),
    re.compile(r"()\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+)?"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I),
    re.compile(r"()-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
)


# One pass over a value instead of one per pattern (a 50,000-resource plan scrubs millions).
_ANY_SECRET_VALUE = re.compile("|".join(f"(?:{p.pattern})" for p in SECRET_VALUES if not p.flags & re.I)
                               + "|(?i:" + "|".join(f"(?:{p.pattern})" for p in SECRET_VALUES if p.flags & re.I) + ")")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    low = key.lower()
    return low in SECRET_KEYS or any(f in low for f in SECRET_FRAGMENTS)


def is_secret_value(value: str) -> bool:
    # every pattern needs "=", "eyJ", "-----BEGIN" or a leading "Bearer": most values have none
    if "=" not in value and "eyJ" not in value and "-----BEGIN" not in value \
            and not (value[:1] in "bB" and value[:6].lower() == "bearer"):
        return False
    return _ANY_SECRET_VALUE.search(value) is not None


# is_secret_key's verdict on each key met (keys of any type: a number is never a secret). A plan
# asks about the same few hundred keys millions of times; a dict lookup is the cheapest answer.
_KEY_VERDICT: dict[Any, bool] = {}


def _secret_key(key: Any) -> bool:
    if len(_KEY_VERDICT) >= 65536:  # an estate's tags may bring any number of keys: stay bounded
        _KEY_VERDICT.clear()
    verdict = _KEY_VERDICT[key] = is_secret_key(str(key))
    return verdict


def scrub(obj: Any) -> Any:
    """A copy of `obj` with secrets replaced by REDACTED (strings on their own: free text)."""
    if isinstance(obj, str):
        return scrub_text(obj)
    return _scrub(obj)


def scrub_for_output(obj: Any) -> Any:
    """`scrub(obj)` for a value about to be encoded and dropped: `obj` itself when it holds no
    secret (no copy), else the scrubbed copy."""
    if isinstance(obj, (dict, list)) and not holds_secret(obj):
        return obj
    return scrub(obj)


# A Key Vault access policy's `permissions.keys` lists operation names, not key material: kept, so
# a journaled grant can be compared and undone. Anything else under `keys` stays a secret.
KEY_PERMISSION_NAMES = frozenset({
    "all", "backup", "create", "decrypt", "delete", "encrypt", "get", "getrotationpolicy", "import", "list",
    "purge", "recover", "release", "restore", "rotate", "setrotationpolicy", "sign", "unwrapkey", "update",
    "verify", "wrapkey"})


def _permission_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.lower() in KEY_PERMISSION_NAMES for v in value)


def _scrub(obj: Any) -> Any:
    # Leaves are handled in the loop, not by a call each: a 50,000-resource plan has millions.
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        verdicts = _KEY_VERDICT
        for k, v in obj.items():
            secret = verdicts.get(k)
            if secret is None:
                secret = _secret_key(k)
            if secret:  # "keys" is one: its permission names are kept
                if str(k).lower() == "keys" and _permission_names(v):
                    out[k] = list(v)
                elif v is not None and not isinstance(v, bool) and v != {} and v != []:
                    out[k] = REDACTED
                else:
                    out[k] = _scrub(v)
            elif isinstance(v, str):
                # is_secret_value's cheap test inline: millions of values, nearly all plain
                if ("=" in v or "eyJ" in v or "-----BEGIN" in v or (v[:1] in "bB" and v[:6].lower() == "bearer")) \
                        and _ANY_SECRET_VALUE.search(v) is not None:
                    out[k] = REDACTED
                else:
                    out[k] = v
            elif isinstance(v, (dict, list)):
                out[k] = _scrub(v)
            else:
                out[k] = v
        return out
    if isinstance(obj, list):
        return [_scrub(v) if isinstance(v, (dict, list, str)) else v for v in obj]
    if isinstance(obj, str) and is_secret_value(obj):
        return REDACTED
    return obj


def holds_secret(obj: Any) -> bool:
    """Whether `scrub` would change anything in `obj` (a JSON value): most of a plan holds no
    secret, and telling so without building a copy is about twice as cheap as the copy."""
    if isinstance(obj, dict):
        verdicts = _KEY_VERDICT
        for k, v in obj.items():
            secret = verdicts.get(k)
            if secret is None:
                secret = _secret_key(k)
            if secret:  # permission names under "keys" count too: scrub copies them as a list
                if not (v is None or isinstance(v, bool) or v == {} or v == []) or holds_secret(v):
                    return True
            elif isinstance(v, str):
                if is_secret_value(v):
                    return True
            elif isinstance(v, (dict, list)) and holds_secret(v):
                return True
        return False
    if isinstance(obj, list):
        return any(holds_secret(v) for v in obj if isinstance(v, (dict, list, str)))
    if isinstance(obj, str):
        return is_secret_value(obj)
    return False


def scrub_text(text: str) -> str:
    """Free text with each secret in it replaced by REDACTED (the words around it kept)."""
    for pattern in _IN_TEXT:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redacted_paths(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths in `obj` that hold REDACTED: values a restore from it cannot bring back."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += redacted_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += redacted_paths(v, f"{prefix}[{i}]")
    elif obj == REDACTED:
        out.append(prefix or "(value)")
    return out


def unrestorable_note(*images: Any) -> str:
    """'' or a sentence naming the secret values that were never stored, so cannot be restored."""
    paths: list[str] = []
    for image in images:
        for p in redacted_paths(image):
            if p not in paths:
                paths.append(p)
    if not paths:
        return ""
    shown = ", ".join(paths[:12]) + (f" and {len(paths) - 12} more" if len(paths) > 12 else "")
    return f"secret values were never journaled and could not be restored: {shown}; set them again by hand"
