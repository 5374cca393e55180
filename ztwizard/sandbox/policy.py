"""The sandbox's Azure Policy API: policy definitions, policy set definitions (initiatives),
assignments and exemptions, at subscription and management-group scope, and the built-in
definitions by id (GET /providers/Microsoft.Authorization/policyDefinitions/{id}).

What ARM refuses with a 400, this refuses the same way: a definition without a rule or effect, a
parameter of an unknown type, a reference to a definition that does not exist (an unknown built-in
id included), a parameter the referenced definition does not declare, a value outside its
allowedValues, a required parameter left out, an assignment whose DeployIfNotExists or Modify
effect has no managed identity (or no location for it), an exemption of an unknown assignment.

The built-ins it knows are its own table (specs/policy_builtins.json), never the client's."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from .request import Reply, Request, arm_error, authorize_write
from .store import clone, key, new_etag, normalize_entry

AUTH = "microsoft.authorization"
TYPES = {"policydefinitions": "Microsoft.Authorization/policyDefinitions",
         "policysetdefinitions": "Microsoft.Authorization/policySetDefinitions",
         "policyassignments": "Microsoft.Authorization/policyAssignments",
         "policyexemptions": "Microsoft.Authorization/policyExemptions"}
PARAMETER_TYPES = {"string", "array", "object", "boolean", "integer", "float", "datetime"}
MODES = {"all", "indexed", "microsoft.kubernetes.data", "microsoft.keyvault.data", "microsoft.network.data"}
EFFECTS = {"audit", "auditifnotexists", "deny", "denyaction", "deployifnotexists", "modify", "append",
           "disabled", "manual"}
NEEDS_IDENTITY = {"deployifnotexists", "modify"}
EXEMPTION_CATEGORIES = {"waiver", "mitigated"}
_PARAM_REF = re.compile(r"^\[\s*parameters\(\s*'([^']+)'\s*\)\s*\]$", re.IGNORECASE)
MG_PREFIX = "/providers/microsoft.management/managementgroups/"


@cache
def builtins() -> dict[str, dict[str, Any]]:
    """Built-in definition name (lower-case GUID) -> {displayName, mode, parameters}."""
    data = json.loads(resources.files(__package__).joinpath("specs/policy_builtins.json").read_text())
    return {k.lower(): v for k, v in data["definitions"].items()}


def _split(path: str) -> tuple[str, str, str] | None:
    """(scope, policy type key, name) of a policy resource path, or None for any other path."""
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    if len(low) < 4 or low[-4:-2] != ["providers", AUTH] or low[-2] not in TYPES:
        return None
    return ("/" + "/".join(segs[:-4]) if len(segs) > 4 else ""), low[-2], segs[-1]


def route(sb: Any, ctx: Request) -> Reply | None:
    """ARM's answer for a policy request, or None when the path is not one."""
    where = _split(ctx.path)
    if where is None:
        return None
    scope, kind, name = where
    _check_scope(sb, scope, kind)
    rid = f"{scope}/providers/{TYPES[kind]}/{name}"
    if ctx.method == "GET":
        if kind == "policydefinitions" and not scope:
            found = builtins().get(name.lower())
            if found is None:
                raise arm_error(404, "PolicyDefinitionNotFound", f"The policy definition '{name}' could not be found.")
            return Reply(200, _builtin_body(name.lower(), found))
        entry = sb.store.get(rid)
        if entry is None:
            code = {"policydefinitions": "PolicyDefinitionNotFound", "policysetdefinitions": "PolicySetDefinitionNotFound",
                    "policyassignments": "PolicyAssignmentNotFound", "policyexemptions": "PolicyExemptionNotFound"}[kind]
            raise arm_error(404, code, f"The {TYPES[kind].split('/')[1][:-1]} '{name}' could not be found.")
        return Reply(200, clone(entry))
    if not scope:
        raise arm_error(403, "AuthorizationFailed", "Built-in policy definitions cannot be written.")
    if ctx.method == "DELETE":
        authorize_write(ctx, sb.read_only, TYPES[kind], scope)
        gone = sb.store.delete(rid)
        if gone is not None:
            ctx.dirty = True
        return Reply(200 if gone is not None else 204, clone(gone) if gone is not None else None)
    if ctx.method != "PUT":
        raise arm_error(405, "MethodNotAllowed", f"The requested method '{ctx.method}' is not allowed on '{ctx.path}'.")
    authorize_write(ctx, sb.read_only, TYPES[kind], scope)
    body = ctx.json()
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise arm_error(400, "InvalidRequestContent", "The request content was invalid: 'properties' must be an object.")
    checker = {"policydefinitions": _definition, "policysetdefinitions": _set_definition,
               "policyassignments": _assignment, "policyexemptions": _exemption}[kind]
    entry = checker(sb, scope, name, body)
    entry["id"] = rid
    existed = sb.store.get(rid) is not None
    entry = normalize_entry(entry)
    entry["etag"] = new_etag()
    sb.store.put(entry)
    ctx.dirty = True
    return Reply(200 if existed else 201, clone(entry))


def _check_scope(sb: Any, scope: str, kind: str) -> None:
    low = scope.lower()
    if not low:
        if kind != "policydefinitions" and kind != "policysetdefinitions":
            raise arm_error(404, "NotFound", f"No route for '{scope or '/'}'.")
        return
    if low.startswith(MG_PREFIX):
        group = low[len(MG_PREFIX):].split("/")[0]
        if group not in known_management_groups(sb):
            raise arm_error(404, "ManagementGroupNotFound", f"The management group '{group}' could not be found.")
        return
    parts = low.strip("/").split("/")
    if parts[0] != "subscriptions" or len(parts) < 2 or parts[1] not in sb.store.subscriptions:
        raise arm_error(404, "SubscriptionNotFound", f"The subscription '{parts[1] if len(parts) > 1 else ''}' "
                     "could not be found.")
    if kind in ("policydefinitions", "policysetdefinitions") and len(parts) > 2:
        raise arm_error(400, "InvalidPolicyDefinitionScope",
                     "Policy definitions can be created at subscription or management group scope only.")
    if len(parts) >= 4 and parts[2] == "resourcegroups" and sb.store.get(f"/{'/'.join(parts[:4])}") is None:
        raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")


def known_management_groups(sb: Any) -> set[str]:
    """The tenant root group (named by the tenant id, as in Azure) and any group in the estate."""
    groups = {sb.tenant_id.lower()}
    for k in sb.store.of_type("microsoft.management/managementgroups"):
        entry = sb.store.entries.get(k)
        if entry:
            groups.add(str(entry["name"]).lower())
    return groups


def _bad(code: str, message: str) -> Reply:
    return arm_error(400, code, message)


def _builtin_body(name: str, found: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"/providers/Microsoft.Authorization/policyDefinitions/{name}", "name": name,
            "type": "Microsoft.Authorization/policyDefinitions",
            "properties": {"displayName": found["displayName"], "policyType": "BuiltIn", "mode": found["mode"],
                           "parameters": clone(found["parameters"])}}


# ---- definitions -------------------------------------------------------------------------

def _parameters_block(params: Any, what: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise _bad("InvalidPolicyParameters", f"The parameters of {what} must be an object.")
    for pname, spec in params.items():
        if not isinstance(spec, dict) or str(spec.get("type", "")).lower() not in PARAMETER_TYPES:
            raise _bad("InvalidPolicyParameters", f"The parameter '{pname}' of {what} has no valid type; use one "
                       "of String, Array, Object, Boolean, Integer, Float, DateTime.")
        allowed = spec.get("allowedValues")
        if allowed is not None and not isinstance(allowed, list):
            raise _bad("InvalidPolicyParameters", f"The allowedValues of parameter '{pname}' of {what} must be an array.")
        if "defaultValue" in spec and allowed is not None and not _allowed(spec["defaultValue"], allowed):
            raise _bad("InvalidPolicyParameters", f"The default value of parameter '{pname}' of {what} is not one of "
                       "its allowed values.")
    return params


def _referenced(value: Any) -> list[str]:
    """Parameter names a rule or a value refers to with [parameters('x')]."""
    text = json.dumps(value)
    return re.findall(r"parameters\(\s*'([^']+)'\s*\)", text, re.IGNORECASE)


def _definition(sb: Any, scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    props = body["properties"]
    what = f"the policy definition '{name}'"
    mode = props.get("mode", "Indexed")
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise _bad("InvalidPolicyMode", f"The mode '{mode}' of {what} is not supported; use All or Indexed.")
    params = _parameters_block(props.get("parameters"), what)
    rule = props.get("policyRule")
    if not isinstance(rule, dict) or not isinstance(rule.get("if"), dict) or not isinstance(rule.get("then"), dict):
        raise _bad("InvalidPolicyRule", f"The policy rule of {what} must be an object with 'if' and 'then'.")
    effect = rule["then"].get("effect")
    if not isinstance(effect, str):
        raise _bad("InvalidPolicyRule", f"The policy rule of {what} has no effect.")
    m = _PARAM_REF.match(effect)
    if m is None and effect.lower() not in EFFECTS:
        raise _bad("InvalidPolicyRule", f"The effect '{effect}' of {what} is not a policy effect.")
    declared = {p.lower() for p in params}
    for ref in _referenced(rule):
        if ref.lower() not in declared:
            raise _bad("InvalidPolicyRule", f"The policy rule of {what} refers to the parameter '{ref}', "
                       "which is not defined.")
    effects = _effects(effect, params)
    if effects & NEEDS_IDENTITY:
        details = rule["then"].get("details")
        roles = details.get("roleDefinitionIds") if isinstance(details, dict) else None
        if not isinstance(roles, list) or not roles:
            raise _bad("InvalidPolicyRule", f"The policy rule of {what} has a Modify or DeployIfNotExists effect "
                       "without details.roleDefinitionIds.")
        if "modify" in effects and not isinstance(details.get("operations"), list):
            raise _bad("InvalidPolicyRule", f"The Modify effect of {what} needs details.operations.")
    out = clone(body)
    out["properties"]["policyType"] = "Custom"
    out["properties"].setdefault("mode", mode)
    return out


def _effects(effect: str, params: dict[str, Any]) -> set[str]:
    """The effects a rule's `effect` can take: a literal, or a parameter's allowed values."""
    m = _PARAM_REF.match(effect)
    if m is None:
        return {effect.lower()}
    spec: dict[str, Any] = next((v for k, v in params.items() if k.lower() == m.group(1).lower()), {})
    values = spec.get("allowedValues") or ([spec["defaultValue"]] if "defaultValue" in spec else [])
    return {str(v).lower() for v in values}


def resolve(sb: Any, definition_id: Any) -> tuple[str, dict[str, Any]] | None:
    """(kind, body) of a definition or set definition id, built-ins included."""
    if not isinstance(definition_id, str):
        return None
    where = _split(definition_id)
    if where is None:
        return None
    scope, kind, name = where
    if kind not in ("policydefinitions", "policysetdefinitions"):
        return None
    if not scope:
        found = builtins().get(name.lower()) if kind == "policydefinitions" else None
        return (kind, _builtin_body(name.lower(), found)) if found else None
    entry = sb.store.entries.get(key(f"{scope}/providers/{TYPES[kind]}/{name}"))
    return (kind, entry) if entry is not None else None


def _allowed(value: Any, allowed: list[Any]) -> bool:
    if isinstance(value, list):
        return all(_allowed(v, allowed) for v in value)
    if isinstance(value, str):
        return value.lower() in {str(a).lower() for a in allowed if isinstance(a, str)}
    return value in allowed


def _type_ok(value: Any, ptype: str) -> bool:
    t = ptype.lower()
    return {"string": isinstance(value, str), "datetime": isinstance(value, str),
            "array": isinstance(value, list), "object": isinstance(value, dict),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool)}.get(t, True)


def _check_values(given: Any, declared: dict[str, Any], what: str, outer: dict[str, Any] | None) -> None:
    """`given` ({name: {value}}) against the parameters `declared` by the definition it targets;
    an expression value must name a parameter of `outer` (the set definition's own)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise _bad("InvalidPolicyParameters", f"The parameters of {what} must be an object.")
    low = {k.lower(): (k, v) for k, v in declared.items()}
    for pname, wrapper in given.items():
        if pname.lower() not in low:
            raise _bad("InvalidPolicyParameters", f"The parameter '{pname}' of {what} is not defined by the "
                       "policy definition it refers to.")
        if not isinstance(wrapper, dict) or "value" not in wrapper:
            raise _bad("InvalidPolicyParameters", f"The parameter '{pname}' of {what} must be an object with 'value'.")
        value = wrapper["value"]
        spec = low[pname.lower()][1]
        m = _PARAM_REF.match(value) if isinstance(value, str) else None
        if m is not None:
            if outer is None or m.group(1).lower() not in {k.lower() for k in outer}:
                raise _bad("InvalidPolicyParameters", f"The parameter '{pname}' of {what} refers to the parameter "
                           f"'{m.group(1)}', which is not defined.")
            continue
        if not _type_ok(value, str(spec.get("type", ""))):
            raise _bad("InvalidPolicyParameters", f"The value of parameter '{pname}' of {what} is not of type "
                       f"{spec.get('type')}.")
        allowed = spec.get("allowedValues")
        if allowed is not None and not _allowed(value, allowed):
            raise _bad("InvalidPolicyParameters", f"The value '{value}' of parameter '{pname}' of {what} is not "
                       f"allowed; the allowed values are {', '.join(map(str, allowed))}.")
    missing = [orig for k, (orig, spec) in low.items()
               if k not in {g.lower() for g in given} and "defaultValue" not in spec]
    if missing:
        raise _bad("MissingPolicyParameter", f"The parameter(s) '{', '.join(missing)}' of {what} have no default "
                   "value and must be given.")


def _set_definition(sb: Any, scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    props = body["properties"]
    what = f"the policy set definition '{name}'"
    own = _parameters_block(props.get("parameters"), what)
    members = props.get("policyDefinitions")
    if not isinstance(members, list) or not members:
        raise _bad("InvalidPolicySetDefinition", f"{what[0].upper()}{what[1:]} must list policyDefinitions.")
    groups = props.get("policyDefinitionGroups") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) and g.get("name") for g in groups):
        raise _bad("InvalidPolicySetDefinition", f"The policyDefinitionGroups of {what} must be objects with a name.")
    group_names = {str(g["name"]).lower() for g in groups}
    refs: set[str] = set()
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise _bad("InvalidPolicySetDefinition", f"Item {i} of the policyDefinitions of {what} is not an object.")
        ref = member.get("policyDefinitionReferenceId") or str(i)
        if str(ref).lower() in refs:
            raise _bad("InvalidPolicySetDefinition", f"The reference id '{ref}' appears twice in {what}.")
        refs.add(str(ref).lower())
        unknown = [g for g in member.get("groupNames") or [] if str(g).lower() not in group_names]
        if unknown:
            raise _bad("InvalidPolicySetDefinition", f"Reference '{ref}' of {what} names the group(s) "
                       f"'{', '.join(map(str, unknown))}', which policyDefinitionGroups does not define.")
        found = resolve(sb, member.get("policyDefinitionId"))
        if found is None or found[0] != "policydefinitions" or not _visible(scope, member["policyDefinitionId"]):
            raise _bad("PolicyDefinitionNotFound", f"The policy definition '{member.get('policyDefinitionId')}' "
                       f"referenced by {what} (reference '{ref}') could not be found.")
        declared = found[1].get("properties", {}).get("parameters") or {}
        _check_values(member.get("parameters"), declared, f"reference '{ref}' of {what}", own)
    out = clone(body)
    out["properties"]["policyType"] = "Custom"
    return out


def _visible(scope: str, definition_id: str) -> bool:
    """A custom definition can be used at its own scope and below: a management group's from that
    group and the subscriptions under it (the sandbox's subscriptions are all under the root)."""
    where = _split(definition_id)
    assert where is not None
    def_scope = where[0].lower()
    return not def_scope or scope.lower() == def_scope or scope.lower().startswith(def_scope + "/") \
        or (def_scope.startswith(MG_PREFIX) and scope.lower().startswith("/subscriptions/"))


def _assignment(sb: Any, scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    props = body["properties"]
    what = f"the policy assignment '{name}'"
    target = props.get("policyDefinitionId")
    found = resolve(sb, target)
    if found is None or not _visible(scope, str(target)):
        raise _bad("PolicyDefinitionNotFound", f"The policy definition '{target}' assigned by {what} could not "
                   "be found.")
    kind, definition = found
    declared = definition.get("properties", {}).get("parameters") or {}
    _check_values(props.get("parameters"), declared, what, None)
    if props.get("enforcementMode") not in (None, "Default", "DoNotEnforce"):
        raise _bad("InvalidRequestContent", f"The enforcementMode of {what} must be Default or DoNotEnforce.")
    if _needs_identity(sb, kind, definition, props.get("parameters") or {}):
        identity = body.get("identity") or {}
        if str(identity.get("type", "None")).lower() not in ("systemassigned", "userassigned"):
            raise _bad("InvalidCreatePolicyAssignmentRequest", f"{what[0].upper()}{what[1:]} assigns a policy with "
                       "a DeployIfNotExists or Modify effect and needs a managed identity ('identity').")
        if not body.get("location"):
            raise _bad("LocationRequired", f"{what[0].upper()}{what[1:]} has a managed identity and needs a "
                       "'location'.")
    out = clone(body)
    identity = out.get("identity")
    if isinstance(identity, dict) and str(identity.get("type", "")).lower() == "systemassigned":
        identity["principalId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}/{name}".lower()))
        identity["tenantId"] = sb.tenant_id
    out["properties"]["scope"] = scope
    return out


def _needs_identity(sb: Any, kind: str, definition: dict[str, Any], given: dict[str, Any]) -> bool:
    """Does the assignment's effect come out as DeployIfNotExists or Modify for any member?"""
    own = definition.get("properties", {}).get("parameters") or {}

    def value_of(pname: str, params: dict[str, Any], values: dict[str, Any]) -> Any:
        for k, w in values.items():
            if k.lower() == pname.lower() and isinstance(w, dict):
                return w.get("value")
        spec: dict[str, Any] = next((v for k, v in params.items() if k.lower() == pname.lower()), {})
        return spec.get("defaultValue")

    members = definition.get("properties", {}).get("policyDefinitions") if kind == "policysetdefinitions" else None
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if members is None:
        pairs.append((definition, given))
    else:
        for member in members:
            found = resolve(sb, member.get("policyDefinitionId"))
            if found is None:
                continue
            values = {}
            for pname, w in (member.get("parameters") or {}).items():
                v = w.get("value") if isinstance(w, dict) else None
                m = _PARAM_REF.match(v) if isinstance(v, str) else None
                values[pname] = {"value": value_of(m.group(1), own, given) if m else v}
            pairs.append((found[1], values))
    for member_def, values in pairs:
        params = member_def.get("properties", {}).get("parameters") or {}
        if any(k.lower() == "effect" for k in params):
            effect = value_of("effect", params, values)
        else:  # a built-in without an effect parameter (deny-only) or a custom literal effect
            rule = member_def.get("properties", {}).get("policyRule") or {}
            effect = (rule.get("then") or {}).get("effect")
        if isinstance(effect, str) and effect.lower() in NEEDS_IDENTITY:
            return True
    return False


def _exemption(sb: Any, scope: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    props = body["properties"]
    what = f"the policy exemption '{name}'"
    assignment_id = props.get("policyAssignmentId")
    assignment = sb.store.get(assignment_id) if isinstance(assignment_id, str) else None
    if assignment is None or not str(assignment["type"]).lower().endswith("policyassignments"):
        raise _bad("PolicyAssignmentNotFound", f"The policy assignment '{assignment_id}' exempted by {what} could "
                   "not be found.")
    at = str(assignment.get("properties", {}).get("scope", "")).lower()
    if at and not (scope.lower() == at or scope.lower().startswith(at + "/")
                   or (at.startswith(MG_PREFIX) and scope.lower().startswith("/subscriptions/"))):
        raise _bad("InvalidPolicyExemptionScope", f"The scope of {what} is outside the assignment's scope '{at}'.")
    if str(props.get("exemptionCategory", "")).lower() not in EXEMPTION_CATEGORIES:
        raise _bad("InvalidRequestContent", f"The exemptionCategory of {what} must be Waiver or Mitigated.")
    expires = props.get("expiresOn")
    if expires is not None:
        try:
            datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        except ValueError:
            raise _bad("InvalidRequestContent", f"The expiresOn of {what} is not an ISO 8601 date-time.") from None
    refs = props.get("policyDefinitionReferenceIds")
    if refs:
        target = resolve(sb, assignment.get("properties", {}).get("policyDefinitionId"))
        members = (target[1].get("properties", {}).get("policyDefinitions") or []) if target else []
        known = {str(m.get("policyDefinitionReferenceId", "")).lower() for m in members}
        unknown = [r for r in refs if str(r).lower() not in known]
        if unknown:
            raise _bad("InvalidPolicyExemption", f"{what[0].upper()}{what[1:]} names reference id(s) "
                       f"'{', '.join(map(str, unknown))}' that the assigned set definition does not have.")
    return clone(body)
