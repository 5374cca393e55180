"""The policy export: one management-group deployment template that holds the custom definitions,
the initiative (policySetDefinition) over the selected checks, its assignment with a system-assigned
identity and the role assignments that identity needs for DeployIfNotExists/Modify remediation,
and the waivers as policy exemptions (nested deployments to each waiver's scope).

Deploy it with `az deployment mg create --management-group-id MG --location L --template-file F`.
`requests()` turns the same document into the REST calls it stands for at one management group
(what ARM would PUT), so it can be checked against a policy API directly."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .. import __version__
from ..armjson import get_path
from ..errors import UsageError
from ..waivers import Waiver
from . import builtins, mapping

MG_SCHEMA = "https://schema.management.azure.com/schemas/2019-08-01/managementGroupDeploymentTemplate.json#"
SUB_SCHEMA = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"
RG_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
POLICY_API = "2025-01-01"
EXEMPTION_API = "2022-07-01-preview"
ROLE_API = "2022-04-01"
DEPLOYMENT_API = "2025-04-01"
SET_NAME = "ztwizard-zero-trust-iaas"
ASSIGNMENT = "[parameters('assignmentName')]"
ASSIGNMENT_ID = ("[extensionResourceId(managementGroup().id, 'Microsoft.Authorization/policyAssignments', "
                 "parameters('assignmentName'))]")
NEEDS_IDENTITY = ("deployifnotexists", "modify")


@dataclass(frozen=True)
class CheckInfo:
    """What the export needs of a catalog check."""

    id: str
    step: str
    title: str
    remediation: str


@dataclass
class Coverage:
    """How the selected checks came out: the closing note's numbers."""

    builtin: list[str]
    custom: list[str]
    covered: dict[str, str]
    not_expressible: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"builtin": self.builtin, "custom": self.custom, "coveredBy": self.covered,
                "notExpressible": self.not_expressible}


def session_choices(records: Iterable[Any]) -> dict[str, Any]:
    """Initiative parameter -> the value the session's applied changes chose (see mapping.CHOICES)."""
    out: dict[str, Any] = {}
    applied = [r for r in records if getattr(r, "state", "") in ("applied", "adopted")]
    for choice in mapping.CHOICES:
        for rec in applied:
            if rec.check_id != choice.check:
                continue
            value = rec.resource_id.rsplit("/", 1)[-1] if choice.path == "name" else \
                get_path(rec.body or {}, choice.path) if isinstance(rec.body, dict) else None
            if value is None:
                value = get_path(rec.plan_after or {}, choice.path)
            if value is not None and (not choice.allowed or value in choice.allowed):
                out[choice.name] = value
    return out


def _ref_ids(checks: Sequence[CheckInfo]) -> list[tuple[str, str, list[str]]]:
    """(reference id, definition id, checks it serves): one reference per definition, named after
    the first check that uses it; a check's second built-in gets `-2`."""
    refs: dict[str, tuple[str, list[str]]] = {}
    for c in checks:
        source = mapping.COVERED_BY.get(c.id, c.id)  # a covered check is served by its cover's definition
        kind = mapping.kind(source)
        if kind == "builtin":
            for i, guid in enumerate(mapping.BUILTIN[source]):
                did = builtins.get(guid).id
                if did not in refs:
                    refs[did] = (source if i == 0 else f"{source}-{i + 1}", [])
                refs[did][1].append(c.id)
        elif kind == "custom":
            did = f"[managementGroupResourceId('Microsoft.Authorization/policyDefinitions', '{custom_name(source)}')]"
            refs.setdefault(did, (source, []))[1].append(c.id)
    return [(ref, did, served) for did, (ref, served) in refs.items()]


def custom_name(check_id: str) -> str:
    return f"zt-{check_id}"


def coverage(checks: Sequence[CheckInfo]) -> Coverage:
    cov = Coverage([], [], {}, {})
    for c in checks:
        kind = mapping.kind(c.id)
        if kind == "builtin":
            cov.builtin.append(c.id)
        elif kind == "custom":
            cov.custom.append(c.id)
        elif kind == "covered":
            cov.covered[c.id] = mapping.COVERED_BY[c.id]
        else:
            cov.not_expressible[c.id] = mapping.NOT_EXPRESSIBLE.get(c.id, "no policy can judge it")
    return cov


def escaped(value: Any) -> Any:
    """`value` with every string that starts with `[` written `[[`: inside a template, ARM would
    otherwise evaluate a policy's own `[parameters('effect')]` as the template's expression."""
    if isinstance(value, dict):
        return {k: escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escaped(v) for v in value]
    if isinstance(value, str) and value.startswith("["):
        return "[" + value
    return value


def _custom_definition(c: CheckInfo) -> dict[str, Any]:
    spec = mapping.CUSTOM[c.id]
    if spec.related:
        effects = ["AuditIfNotExists", "Disabled"]
        details: dict[str, Any] = {"type": spec.related, "existenceCondition": copy.deepcopy(spec.exists_if)}
        if spec.related_name:
            details["name"] = spec.related_name
        then: dict[str, Any] = {"effect": "[parameters('effect')]", "details": details}
        rule_if: dict[str, Any] = {"field": "type", "equals": spec.type}
    else:
        effects = ["Modify", "Audit", "Disabled"] if spec.modify else ["Audit", "Disabled"]
        then = {"effect": "[parameters('effect')]"}
        if spec.modify:
            then["details"] = {"roleDefinitionIds": list(spec.roles), "operations": copy.deepcopy(list(spec.modify))}
        rule_if = {"allOf": [{"field": "type", "equals": spec.type}, copy.deepcopy(spec.condition)]}
    params = {"effect": {"type": "String", "allowedValues": effects, "defaultValue": effects[0],
                         "metadata": {"displayName": "Effect"}}}
    params.update(copy.deepcopy(spec.parameters))
    return {"type": "Microsoft.Authorization/policyDefinitions", "apiVersion": POLICY_API,
            "name": custom_name(c.id),
            "properties": {"displayName": f"{c.id}: {c.title}"[:128], "policyType": "Custom", "mode": "All",
                           "description": f"Zero Trust IaaS check {c.id} ({c.step}), as ztwizard judges it.",
                           "metadata": {"category": "Zero Trust IaaS", "ztwizardCheck": c.id,
                                        "version": "1.0.0"},
                           "parameters": params,
                           "policyRule": escaped({"if": rule_if, "then": then})}}


def _roles_needed(refs: list[tuple[str, str, list[str]]]) -> list[str]:
    roles: list[str] = []
    for _ref, did, served in refs:
        if did.startswith(builtins.PREFIX):
            b = builtins.get(did.rsplit("/", 1)[-1])
            found = list(b.role_definition_ids) if b.needs_identity() else []
        else:
            spec = mapping.CUSTOM[served[0]]
            found = list(spec.roles) if spec.modify else []
        for role in found:
            guid = role.rsplit("/", 1)[-1].lower()
            if guid not in roles:
                roles.append(guid)
    return roles


def build(checks: Sequence[CheckInfo], *, choices: dict[str, Any] | None = None, waivers: Sequence[Waiver] = (),
          session_id: str = "", subscriptions: Sequence[str] = (), today: date | None = None) -> dict[str, Any]:
    """The management-group template for `checks` (catalog order), with the session's `choices`
    and the active `waivers` of those checks as exemptions."""
    choices = choices or {}
    refs = _ref_ids(checks)
    if not refs:
        raise UsageError("None of the selected checks can be expressed as Azure Policy; there is nothing to export.",
                         "Select other steps or checks (`ztwizard steps`); the ones left out are advisory judgements.")
    cov = coverage(checks)
    params: dict[str, Any] = {
        "assignmentName": {"type": "string", "defaultValue": "ztwizard-zt-iaas", "maxLength": 64,
                           "metadata": {"description": "Name of the policy assignment."}},
        "location": {"type": "string", "defaultValue": "[deployment().location]",
                     "metadata": {"description": "Where the assignment's managed identity lives."}},
    }
    set_params: dict[str, Any] = {}
    used_choices = [ch for ch in mapping.CHOICES
                    if any(ch.definition in (did.rsplit("/", 1)[-1], served[0]) for _r, did, served in refs)]
    for ch in used_choices:
        spec: dict[str, Any] = {"type": ch.type, "metadata": {"displayName": ch.name,
                                                               "description": f"What {ch.check} set."}}
        if ch.allowed:
            spec["allowedValues"] = list(ch.allowed)
        value = choices.get(ch.name, ch.fallback)
        set_params[ch.name] = copy.deepcopy(spec)
        tpl_spec: dict[str, Any] = {"type": ch.type.lower()}
        if ch.allowed:
            tpl_spec["allowedValues"] = list(ch.allowed)
        if value is not None:
            tpl_spec["defaultValue"] = value
        params[ch.name] = tpl_spec
    members = []
    for ref, did, served in refs:
        member: dict[str, Any] = {"policyDefinitionReferenceId": ref, "policyDefinitionId": did, "groupNames": served}
        values = {ch.parameter: {"value": f"[[parameters('{ch.name}')]"} for ch in used_choices
                  if ch.definition in (did.rsplit("/", 1)[-1], served[0])}
        if values:
            member["parameters"] = values
        members.append(member)
    customs = [c for c in checks if mapping.kind(c.id) == "custom"]
    resources: list[dict[str, Any]] = [_custom_definition(c) for c in customs]
    by_id = {c.id: c for c in checks}
    groups = [{"name": c.id, "category": c.step, "displayName": f"{c.id}: {c.title}"[:128]}
              for c in checks if any(c.id in served for _r, _d, served in refs)]
    resources.append({
        "type": "Microsoft.Authorization/policySetDefinitions", "apiVersion": POLICY_API, "name": SET_NAME,
        "dependsOn": [custom_name(c.id) for c in customs],
        "properties": {"displayName": "Zero Trust for Azure IaaS (ztwizard)", "policyType": "Custom",
                       "description": "The checks of a ztwizard hardening session, kept true by Azure Policy.",
                       "metadata": {"category": "Zero Trust IaaS", "version": "1.0.0",
                                    "generator": f"ztwizard {__version__}", "session": session_id or None},
                       "parameters": set_params, "policyDefinitionGroups": groups,
                       "policyDefinitions": members}})
    resources.append({
        "type": "Microsoft.Authorization/policyAssignments", "apiVersion": POLICY_API, "name": ASSIGNMENT,
        "location": "[parameters('location')]", "identity": {"type": "SystemAssigned"},
        "dependsOn": [SET_NAME],
        "properties": {"displayName": "Zero Trust for Azure IaaS (ztwizard)",
                       "policyDefinitionId": "[managementGroupResourceId('Microsoft.Authorization/"
                                             f"policySetDefinitions', '{SET_NAME}')]",
                       "enforcementMode": "Default",
                       "parameters": {ch.name: {"value": f"[parameters('{ch.name}')]"} for ch in used_choices}}})
    for guid in _roles_needed(refs):
        resources.append({
            "type": "Microsoft.Authorization/roleAssignments", "apiVersion": ROLE_API,
            "name": f"[guid(managementGroup().id, parameters('assignmentName'), '{guid}')]",
            "dependsOn": [ASSIGNMENT],
            "properties": {"roleDefinitionId": f"[tenantResourceId('Microsoft.Authorization/roleDefinitions', '{guid}')]",
                           "principalId": f"[reference({ASSIGNMENT_ID[1:-1]}, '{POLICY_API}', 'full').identity.principalId]",
                           "principalType": "ServicePrincipal"}})
    skipped: list[dict[str, str]] = []
    for w in waivers:
        if w.check not in by_id or (today is not None and w.expired(today)):
            continue
        ref_ids = [ref for ref, _did, served in refs if w.check in served]
        if not ref_ids:
            skipped.append({"waiver": w.id, "why": f"{w.check} is not expressed as policy"})
            continue
        nested = _exemption(w, ref_ids, subscriptions)
        if nested is None:
            skipped.append({"waiver": w.id, "why": "the waiver names a resource group in no given subscription"})
            continue
        resources.append(nested)
    return {
        "$schema": MG_SCHEMA, "contentVersion": "1.0.0.0",
        "metadata": {"generator": f"ztwizard {__version__}", "session": session_id or None,
                     "builtInsFrom": f"https://github.com/Azure/azure-policy/tree/{builtins.source_commit()}",
                     "coverage": cov.to_dict(), "exemptionsLeftOut": skipped},
        "parameters": params, "resources": resources}


def _exemption(w: Waiver, ref_ids: list[str], subscriptions: Sequence[str]) -> dict[str, Any] | None:
    """A nested deployment that puts the waiver's exemption at its scope (subscription, resource
    group or resource); None when the scope cannot be named."""
    from .. import resource_id as rid

    sub, rg, relative = w.subscription, w.resource_group, ""
    if w.resource:
        p = rid.parse(w.resource)
        sub, rg = p.subscription or "", p.resource_group or ""
        if rg and "/providers/" in w.resource:
            relative = w.resource.split("/providers/", 1)[1]
    if rg and not sub:
        sub = subscriptions[0] if len(subscriptions) == 1 else ""
    if not sub:
        return None
    props: dict[str, Any] = {"policyAssignmentId": ASSIGNMENT_ID,
                             "policyDefinitionReferenceIds": ref_ids, "exemptionCategory": "Waiver",
                             "displayName": f"{w.check} waived ({w.id})",
                             "description": w.reason[:512],
                             "metadata": {"ztwizardWaiver": w.id, "by": w.by or None}}
    if w.expires:
        props["expiresOn"] = f"{w.expires.isoformat()}T23:59:59Z"  # valid through its expiry date
    exemption: dict[str, Any] = {"type": "Microsoft.Authorization/policyExemptions", "apiVersion": EXEMPTION_API,
                                 "name": f"ztwizard-{w.id}", "properties": props}
    if relative:
        exemption["scope"] = relative
    # The nested templates are evaluated in the outer (management-group) scope, ARM's default:
    # the assignment's id is the outer deployment's expression, and Bicep can write it as one.
    body: dict[str, Any] = {"$schema": RG_SCHEMA if rg else SUB_SCHEMA, "contentVersion": "1.0.0.0",
                            "resources": [exemption]}
    if rg:
        body = {"$schema": SUB_SCHEMA, "contentVersion": "1.0.0.0",
                "resources": [{"type": "Microsoft.Resources/deployments", "apiVersion": DEPLOYMENT_API,
                               "name": f"ztwizard-exempt-{w.id}-rg", "resourceGroup": rg,
                               "properties": {"mode": "Incremental", "template": body}}]}
    return {"type": "Microsoft.Resources/deployments", "apiVersion": DEPLOYMENT_API,
            "name": f"ztwizard-exempt-{w.id}", "location": "[parameters('location')]", "subscriptionId": sub,
            "dependsOn": [ASSIGNMENT],
            "properties": {"mode": "Incremental", "template": body}}


# ---- the REST calls the template stands for --------------------------------------------------

_PARAM = re.compile(r"\[parameters\('([^']+)'\)\]")
_MG_RESOURCE = re.compile(r"\[managementGroupResourceId\('([^']+)', '([^']+)'\)\]")


def requests(template: dict[str, Any], management_group: str, values: dict[str, Any] | None = None
             ) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of each PUT the template makes at `management_group` (role assignments left
    out: they need the identity ARM creates), with template parameters resolved from `values` and
    their defaults. Only the expressions this module writes are understood."""
    mg = f"/providers/Microsoft.Management/managementGroups/{management_group}"
    given = dict(values or {})
    for name, spec in template.get("parameters", {}).items():
        if name not in given and "defaultValue" in spec:
            given[name] = spec["defaultValue"]
    given["location"] = given.get("location") if not str(given.get("location", "")).startswith("[") else "westeurope"

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, str):
            if value.startswith("[["):  # a policy's own expression, escaped for the template
                return value[1:]
            m = _PARAM.fullmatch(value)
            if m:
                return given[m.group(1)]
            m = _MG_RESOURCE.fullmatch(value)
            if m:
                return f"{mg}/providers/{m.group(1)}/{m.group(2)}"
            if value == ASSIGNMENT_ID:
                return f"{mg}/providers/Microsoft.Authorization/policyAssignments/{given['assignmentName']}"
        return value

    out: list[tuple[str, dict[str, Any]]] = []
    for res in template["resources"]:
        rtype = res["type"]
        if rtype in ("Microsoft.Authorization/policyDefinitions", "Microsoft.Authorization/policySetDefinitions",
                     "Microsoft.Authorization/policyAssignments"):
            body = {k: resolve(v) for k, v in res.items() if k not in ("type", "apiVersion", "name", "dependsOn")}
            out.append((f"{mg}/providers/{rtype}/{resolve(res['name'])}", body))
        elif rtype == "Microsoft.Resources/deployments":
            out.extend(_exemption_requests(res, resolve(ASSIGNMENT_ID)))
    return out


def _exemption_requests(nested: dict[str, Any], assignment_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    scope = f"/subscriptions/{nested['subscriptionId']}"
    template = nested["properties"]["template"]
    for res in template["resources"]:
        if res["type"] == "Microsoft.Resources/deployments":
            rg_scope = f"{scope}/resourceGroups/{res['resourceGroup']}"
            for inner in res["properties"]["template"]["resources"]:
                out.append(_exemption_request(inner, rg_scope, assignment_id))
        else:
            out.append(_exemption_request(res, scope, assignment_id))
    return out


def _exemption_request(res: dict[str, Any], scope: str, assignment_id: str) -> tuple[str, dict[str, Any]]:
    at = f"{scope}/providers/{res['scope']}" if res.get("scope") else scope
    body = copy.deepcopy({"properties": res["properties"]})
    body["properties"]["policyAssignmentId"] = assignment_id
    return f"{at}/providers/Microsoft.Authorization/policyExemptions/{res['name']}", body
