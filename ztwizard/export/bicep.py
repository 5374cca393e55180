"""ARM JSON templates (the ones this package writes) as Bicep text.

* `$schema` becomes `targetScope`; template parameters become `param` lines (with `@allowed`).
* A string `[expr]` is a Bicep expression: `parameters('x')` becomes `x`; the other functions the
  export uses (managementGroupResourceId, tenantResourceId, extensionResourceId, guid, reference,
  managementGroup, deployment) exist in Bicep under the same names. `[[…` is a literal `[…`.
* A child resource whose parent the template does not declare (a subnet the wizard changed) gets
  an `existing` reference to the parent and `parent:`; an extension resource (`scope` relative to a
  resource) gets an `existing` reference to that resource and `scope:`.
* Nested deployments stay `Microsoft.Resources/deployments` resources with their inline template
  (Bicep writes their expressions back as ARM expressions, evaluated in the outer scope)."""

from __future__ import annotations

import re
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM = re.compile(r"parameters\('([A-Za-z_][A-Za-z0-9_]*)'\)")
SCOPES = {"deploymentTemplate.json": "resourceGroup", "subscriptionDeploymentTemplate.json": "subscription",
          "managementGroupDeploymentTemplate.json": "managementGroup",
          "tenantDeploymentTemplate.json": "tenant"}
TYPES = {"string": "string", "securestring": "string", "int": "int", "bool": "bool", "object": "object",
         "array": "array"}


def quote(text: str) -> str:
    """A Bicep string literal: single quotes, with ', \\ and ${ escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${").replace("\n", "\\n") + "'"


def _key(k: str) -> str:
    return k if _IDENT.match(k) else quote(k)


def _expression(text: str) -> str:
    return _PARAM.sub(lambda m: m.group(1), text[1:-1].strip())


def value(v: Any, indent: int = 0) -> str:
    """A JSON value as Bicep."""
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        inner = "\n".join(f"{pad}  {_key(k)}: {value(x, indent + 1)}" for k, x in v.items())
        return "{\n" + inner + f"\n{pad}}}"
    if isinstance(v, list):
        if not v:
            return "[]"
        inner = "\n".join(f"{pad}  {value(x, indent + 1)}" for x in v)
        return "[\n" + inner + f"\n{pad}]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if s.startswith("[["):
        return quote(s[1:])
    if s.startswith("[") and s.endswith("]"):
        return _expression(s)
    return quote(s)


def _symbol(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "res"
    if not base[0].isalpha():
        base = "r_" + base
    base = base[0].lower() + base[1:]
    sym, n = base, 2
    while sym in used:
        sym, n = f"{base}{n}", n + 1
    used.add(sym)
    return sym


def render(template: dict[str, Any], *, header: str = "") -> str:
    """The Bicep text of `template`."""
    schema = str(template.get("$schema", "")).rstrip("#").rsplit("/", 1)[-1]
    lines: list[str] = [f"// {line}" for line in header.splitlines()] if header else []
    lines.append(f"targetScope = {quote(SCOPES.get(schema, 'resourceGroup'))}")
    lines.append("")
    for name, spec in (template.get("parameters") or {}).items():
        if "allowedValues" in spec:
            lines.append(f"@allowed({value(spec['allowedValues'])})")
        desc = (spec.get("metadata") or {}).get("description")
        if desc:
            lines.append(f"@description({quote(desc)})")
        if "maxLength" in spec:
            lines.append(f"@maxLength({spec['maxLength']})")
        typ = TYPES.get(str(spec.get("type", "string")).lower(), "string")
        default = f" = {value(spec['defaultValue'])}" if "defaultValue" in spec else ""
        lines.append(f"param {name} {typ}{default}")
    if template.get("parameters"):
        lines.append("")
    used: set[str] = set(template.get("parameters") or {})
    resources = template.get("resources") or []
    symbols: dict[str, str] = {}
    declared = {(r["type"].lower(), str(r["name"]).lower()) for r in resources}
    for res in resources:
        symbols[str(res["name"])] = _symbol(_base_name(res), used)
    existing: dict[tuple[str, str], str] = {}

    def reference(rtype: str, name: str, api: str) -> str:
        k = (rtype.lower(), name.lower())
        if k not in existing:
            sym = _symbol(name.split("/")[-1] + "_existing", used)
            existing[k] = sym
            parts = name.split("/")
            if len(parts) > 1:  # a child's parent that is itself a child
                parent = reference(rtype.rsplit("/", 1)[0], "/".join(parts[:-1]), api)
                lines.append(f"resource {sym} {quote(f'{rtype}@{api}')} existing = {{\n  parent: {parent}\n"
                             f"  name: {quote(parts[-1])}\n}}\n")
            else:
                lines.append(f"resource {sym} {quote(f'{rtype}@{api}')} existing = {{\n  name: {quote(name)}\n}}\n")
        return existing[k]

    for res in resources:
        rtype, api, name = res["type"], res["apiVersion"], str(res["name"])
        sym = symbols[name]
        body = {k: v for k, v in res.items() if k not in ("type", "apiVersion", "name", "dependsOn", "comments", "scope")}
        head: list[str] = []
        segments = name.split("/") if not name.startswith("[") else [name]
        if len(segments) > 1:
            parent_type, parent_name = rtype.rsplit("/", 1)[0], "/".join(segments[:-1])
            parent_sym = symbols.get(parent_name) if (parent_type.lower(), parent_name.lower()) in declared \
                else reference(parent_type, parent_name, api)
            head.append(f"  parent: {parent_sym}")
            head.append(f"  name: {quote(segments[-1])}")
        else:
            head.append(f"  name: {value(name, 1)}")
        if res.get("scope"):
            sparts = str(res["scope"]).split("/")
            stype = "/".join([sparts[0], *sparts[1::2]])
            sname = "/".join(sparts[2::2])
            head.append(f"  scope: {reference(stype, sname, api_for(stype, str(res['scope']), resources))}")
        deps = [symbols[d] for d in res.get("dependsOn") or [] if d in symbols]
        if deps:
            head.append(f"  dependsOn: [\n{''.join(f'    {d}' + chr(10) for d in deps)}  ]")
        if res.get("comments"):
            lines.append(f"// {res['comments']}")
        inner = "\n".join(f"  {_key(k)}: {value(v, 1)}" for k, v in body.items())
        lines.append(f"resource {sym} {quote(f'{rtype}@{api}')} = {{\n" + "\n".join(head)
                     + ("\n" + inner if inner else "") + "\n}\n")
    return "\n".join(lines).rstrip() + "\n"


def _base_name(res: dict[str, Any]) -> str:
    """What a resource's symbol is made from: its literal name, or for a computed name the type
    (a role assignment named by guid(…, 'ROLE') gets the role's first digits)."""
    name = str(res["name"])
    if not name.startswith("["):
        return name.replace("/", "_")
    kind = str(res["type"]).rsplit("/", 1)[-1].rstrip("s")
    literals = [lit for lit in re.findall(r"'([^']*)'", name) if lit not in _PARAM.findall(name)]
    return f"{kind}_{literals[-1][:8]}" if literals else kind


def api_for(rtype: str, relative_id: str, resources: list[dict[str, Any]]) -> str:
    """The api-version to reference an existing resource of `rtype` with: the template's own for
    that type if it has one, else the one the wizard reads that type with."""
    for r in resources:
        if r["type"].lower() == rtype.lower():
            return str(r["apiVersion"])
    from ..gateway import api_version_for

    return api_version_for(f"/subscriptions/0/resourceGroups/rg/providers/{relative_id}")
