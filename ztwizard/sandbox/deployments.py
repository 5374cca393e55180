"""The sandbox's template validation: POST `{scope}/providers/Microsoft.Resources/deployments/{name}/validate`
at resource-group, subscription and management-group scope, as ARM's preflight does it.

Checked against the sandbox's own tables (schema.py, policy.py), never the client's: the template's
$schema matches the scope; every template parameter without a default is given; every resource
(nested inline deployments included) has a type the sandbox serves, an api-version that type
answers to, a name with one segment per type level, and, when it holds no template expression, a
body its PUT would accept. Anything else is a 400 in ARM's shape (InvalidTemplate, or
InvalidTemplateDeployment with the resource's own error in `details`)."""

from __future__ import annotations

from typing import Any

from . import policy, schema
from .request import Reply, Request, arm_error, require_rg

SCHEMAS = {
    "resourceGroup": "deploymentTemplate.json",
    "subscription": "subscriptionDeploymentTemplate.json",
    "managementGroup": "managementGroupDeploymentTemplate.json",
    "tenant": "tenantDeploymentTemplate.json",
}
DEPLOYMENTS = "microsoft.resources/deployments"
# Types ARM itself serves (no provider behind them) that a template may declare.
ARM_TYPES = {DEPLOYMENTS, "microsoft.resources/resourcegroups", "microsoft.resources/tags"}


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and not value.startswith("[[")


def _has_expression(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_expression(k) or _has_expression(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return _is_expression(value)


def known_types() -> set[str]:
    """Every resource type (lower-case) the sandbox answers for."""
    types = set(schema.covered_types()) | ARM_TYPES
    types |= {t for t in schema.SUPPORTED_API_VERSIONS if "/" in t}
    types |= {t.lower() for t in policy.TYPES.values()}
    return types


def _scope_of(segs: list[str]) -> str:
    low = [s.lower() for s in segs]
    if low[:1] == ["subscriptions"]:
        return "resourceGroup" if len(low) >= 4 and low[2] == "resourcegroups" else "subscription"
    if low[:3] == ["providers", "microsoft.management", "managementgroups"]:
        return "managementGroup"
    return "tenant"


def route(sb: Any, ctx: Request) -> Reply | None:
    """ARM's answer to a deployment validation, or None when the path is not one."""
    segs = [s for s in ctx.path.split("/") if s]
    low = [s.lower() for s in segs]
    if len(low) < 5 or low[-1] != "validate" or low[-5:-2] != ["providers", "microsoft.resources", "deployments"]:
        return None
    if ctx.method != "POST":
        raise arm_error(405, "MethodNotAllowed", f"The requested method '{ctx.method}' is not allowed on '{ctx.path}'.")
    scope_segs = segs[:-5]
    scope = _scope_of(scope_segs)
    name = segs[-2]
    if scope == "resourceGroup":
        require_rg(sb.store, scope_segs[1], scope_segs[3])
    elif scope == "subscription":
        if scope_segs[1].lower() not in sb.store.subscriptions:
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{scope_segs[1]}' could not be found.")
    elif scope == "managementGroup":
        if scope_segs[3].lower() not in policy.known_management_groups(sb):
            raise arm_error(404, "ManagementGroupNotFound", f"The management group '{scope_segs[3]}' could not be found.")
    body = ctx.json()
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        raise arm_error(400, "InvalidRequestContent", "The request content was invalid: 'properties' must be an object.")
    if scope != "resourceGroup" and not body.get("location"):
        raise arm_error(400, "LocationRequired", f"The location property is required for this definition: a "
                     f"{scope}-level deployment needs a location.")
    if props.get("mode", "Incremental") not in ("Incremental", "Complete"):
        raise arm_error(400, "InvalidDeploymentMode", "The deployment mode must be Incremental or Complete.")
    template = props.get("template")
    if not isinstance(template, dict):
        raise arm_error(400, "InvalidTemplate", "Deployment template validation failed: 'properties.template' must be "
                     "an inline template object (templateLink is not supported by the sandbox).")
    problems: list[dict[str, str]] = []
    validated: list[dict[str, str]] = []
    _template(template, scope, props.get("parameters"), name, problems, validated, "")
    if problems:
        first = problems[0]
        if first["code"] == "InvalidTemplate":
            raise arm_error(400, "InvalidTemplate", first["message"])
        reply = arm_error(400, "InvalidTemplateDeployment",
                          f"The template deployment '{name}' is not valid according to the validation procedure. "
                          "See inner errors for details.")
        reply.body["error"]["details"] = problems
        raise reply
    return Reply(200, {"id": "/" + "/".join(segs[:-1]), "name": name, "type": "Microsoft.Resources/deployments",
                        "properties": {"provisioningState": "Succeeded", "mode": props.get("mode", "Incremental"),
                                       "validatedResources": validated}})


def _template(template: dict[str, Any], scope: str, given: Any, name: str, problems: list[dict[str, str]],
              validated: list[dict[str, str]], where: str) -> None:
    def invalid(message: str) -> None:
        problems.append({"code": "InvalidTemplate", "message": f"Deployment template validation failed: '{message}'."})

    expected = SCHEMAS[scope]
    declared_schema = str(template.get("$schema", ""))
    if not declared_schema.endswith(f"/{expected}#") and not declared_schema.endswith(f"/{expected}"):
        invalid(f"The template{where} $schema '{declared_schema}' is not valid for a {scope} deployment; it "
                f"must name {expected}")
        return
    if "contentVersion" not in template:
        invalid(f"The template{where} has no 'contentVersion'")
        return
    params = template.get("parameters") or {}
    values = given if isinstance(given, dict) else {}
    if not isinstance(params, dict):
        invalid(f"The template{where} 'parameters' must be an object")
        return
    for pname, spec in params.items():
        if not isinstance(spec, dict) or "type" not in spec:
            invalid(f"The template{where} parameter '{pname}' has no type")
            return
        if "defaultValue" not in spec and pname not in values:
            invalid(f"The value for the template parameter '{pname}'{where} is not provided")
            return
    resources = template.get("resources")
    if not isinstance(resources, list):
        invalid(f"The template{where} 'resources' must be an array")
        return
    types = known_types()
    for i, res in enumerate(resources):
        at = f"resources[{i}]{where}"
        if not isinstance(res, dict):
            invalid(f"The template resource {at} is not an object")
            continue
        rtype, api, rname = res.get("type"), res.get("apiVersion"), res.get("name")
        if not isinstance(rtype, str) or not isinstance(api, str) or not isinstance(rname, str) \
                or _is_expression(api) or _is_expression(rtype):
            invalid(f"The template resource {at} must have a literal 'type' and 'apiVersion' and a 'name'")
            continue
        low = rtype.lower()
        if low.count("/") < 1:
            invalid(f"The template resource '{rname}' type '{rtype}' is not a namespace/type pair")
            continue
        if not _is_expression(rname) and len(rname.strip("/").split("/")) != low.count("/"):
            invalid(f"The template resource '{rname}' for type '{rtype}' has incorrect segment lengths. A nested "
                    "resource type must have identical number of segments as its resource name")
            continue
        if low not in types:
            ns, _, short = rtype.partition("/")
            problems.append({"code": "InvalidResourceType", "target": at,
                             "message": f"The resource type '{short}' could not be found in the namespace '{ns}' "
                                        f"for api version '{api}'."})
            continue
        versions = schema._supported(low)
        if versions is not None and api not in versions:
            short = rtype.split("/", 1)[1]
            problems.append({"code": "NoRegisteredProviderFound", "target": at,
                             "message": f"No registered resource provider found for location 'global' and API "
                                        f"version '{api}' for type '{short}'. The supported api-versions are "
                                        f"'{', '.join(versions)}'."})
            continue
        if low == DEPLOYMENTS:
            inner = (res.get("properties") or {}).get("template")
            if isinstance(inner, dict):
                inner_scope = "resourceGroup" if res.get("resourceGroup") or scope == "resourceGroup" else \
                    "subscription" if res.get("subscriptionId") or scope == "subscription" else scope
                _template(inner, inner_scope, (res.get("properties") or {}).get("parameters"), name, problems,
                          validated, f" of nested deployment '{rname}'")
            continue
        body = {k: v for k, v in res.items()
                if k not in ("type", "apiVersion", "name", "dependsOn", "scope", "condition", "copy", "comments")}
        if not _has_expression(body):
            refusal = schema.body_refusal("PUT", low, api, body)
            if refusal:
                problems.append({"code": refusal[1], "target": at, "message": refusal[2]})
                continue
        validated.append({"type": rtype, "name": rname, "apiVersion": api})
