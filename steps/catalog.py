"""Loading the catalog: one TOML data file per article, plus the article's Python evaluators
registered by check id. See steps/README.md for the layout and how to add a check.

The data file is validated when it is read: an unknown key, a value of the wrong type, a data
entry without an evaluator or an evaluator without an entry is a CatalogError naming the file
and the check, so a typo fails the test suite instead of silently dropping a check."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

from . import params as rules
from ._base import REMEDIATIONS, CatalogError, Check, Param, Property, Read, Step, evaluate_property

# Evaluators of cross-resource checks, by check id: {id: (module, function)}.
_REGISTRY: dict[str, tuple[str, Callable[..., Any]]] = {}


def check(check_id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the evaluator of `check_id`; it receives a Context and writes through it."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if check_id in _REGISTRY and _REGISTRY[check_id][1] is not fn:
            raise CatalogError(f"Two evaluators are registered for {check_id}.")
        _REGISTRY[check_id] = (fn.__module__, fn)
        return fn

    return register


# ---- the schema -------------------------------------------------------------------------------
# key: (type(s), required). Types are checked exactly (bool is not an int here).
ARTICLE_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "article": ((str,), True), "title": ((str,), True), "order": ((int,), True),
    "legacy": ((bool,), False), "step": ((list,), False),
}
STEP_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True), "number": ((int,), True), "title": ((str,), True), "why": ((str,), True),
    "check": ((list,), True),
}
CHECK_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True), "title": ((str,), True), "remediation": ((str,), True), "risk": ((str,), True),
    "mcsb": ((str,), True), "policy": ((str,), False), "disruptive": ((bool,), False),
    "billable": ((bool,), False), "instruction": ((str,), False), "change_title": ((str,), False),
    "resource_type": ((str,), False), "property": ((dict,), False), "param": ((list,), False),
    "reads": ((list,), False),
    "creates_by_choice": ((bool,), False),
}
ANY_VALUE = (str, int, float, bool, list, dict)
PROPERTY_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "path": ((str,), True), "expected": (ANY_VALUE, True), "what": ((str,), True),
    "default": (ANY_VALUE, False), "compliant": ((list,), False), "fix": ((dict,), False),
    "fix_with": ((str,), False), "compliant_if": ((str,), False), "applies_if": ((str,), False),
    "caveat_with": ((str,), False),
    "fail_message": ((str,), False), "ignore_case": ((bool,), False),
}
PARAM_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True), "type": ((str,), True), "rule": ((str,), True), "help": ((str,), True),
}
PARAM_TYPES = ("str", "int")
READ_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "child": ((str,), True), "of": ((str,), True), "when": ((str,), False),
}


def _validate(table: Any, keys: dict[str, tuple[tuple[type, ...], bool]], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CatalogError(f"{where}: expected a table, found {type(table).__name__}.")
    for k, v in table.items():
        if k not in keys:
            raise CatalogError(f"{where}: unknown key {k!r} (known: {', '.join(keys)}).")
        types, _ = keys[k]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise CatalogError(f"{where}: {k} = {v!r} is not a {' or '.join(t.__name__ for t in types)}.")
    missing = [k for k, (_, required) in keys.items() if required and k not in table]
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(missing)}.")
    return table


def _helper(module: Any, name: str, where: str) -> Callable[..., Any]:
    fn = getattr(module, name, None)
    if not callable(fn):
        raise CatalogError(f"{where}: {module.__name__} has no function {name!r}.")
    return fn  # type: ignore[no-any-return]


def _param(raw: Any, where: str) -> Param:
    p = _validate(raw, PARAM_KEYS, where)
    if p["type"] not in PARAM_TYPES:
        raise CatalogError(f"{where}: type = {p['type']!r} is not one of {', '.join(PARAM_TYPES)}.")
    if not rules.known_rule(p["rule"]):
        raise CatalogError(f"{where}: rule = {p['rule']!r} is not a rule of steps/params.py.")
    return Param(p["name"], p["type"], p["rule"], p["help"])


def _read(raw: Any, module: Any, where: str) -> Read:
    r = _validate(raw, READ_KEYS, where)
    child, parent = r["child"], r["of"]
    if "/" not in child or "/" not in parent or child.lower() == parent.lower():
        raise CatalogError(f"{where}: child = {child!r} of = {parent!r} must be two full resource types "
                           "(e.g. child = \"Microsoft.Storage/storageAccounts/fileServices\", "
                           "of = \"Microsoft.Storage/storageAccounts\").")
    when = _helper(module, r["when"], where) if "when" in r else None
    return Read(child, parent, when)


def _check(raw: Any, source: str, module: Any, evaluators: dict[str, Callable[..., Any]]) -> Check:
    where = f"{source}: check {raw.get('id', '(no id)') if isinstance(raw, dict) else '(not a table)'}"
    c = _validate(raw, CHECK_KEYS, where)
    if c["remediation"] not in REMEDIATIONS:
        raise CatalogError(f"{where}: remediation = {c['remediation']!r} is not one of {', '.join(REMEDIATIONS)}.")
    params = tuple(_param(p, f"{where}: param") for p in c.get("param", []))
    reads = tuple(_read(r, module, f"{where}: reads") for r in c.get("reads", []))
    if len({p.name for p in params}) != len(params):
        raise CatalogError(f"{where}: a parameter is declared twice.")
    if c.get("creates_by_choice") and (c["remediation"] not in ("auto-patch", "auto-put") or not params):
        raise CatalogError(f"{where}: creates_by_choice is for an auto check whose parameter picks a create instead.")
    if "property" in c:
        if c["id"] in evaluators:
            raise CatalogError(f"{where}: declared as a property check and also has an evaluator in {module.__name__}.")
        if not c.get("resource_type"):
            raise CatalogError(f"{where}: a property check needs resource_type.")
        prop = _validate(c["property"], PROPERTY_KEYS, f"{where}: property")
        if c["remediation"] in ("auto-patch", "auto-put") and not (prop.get("fix") or prop.get("fix_with")):
            raise CatalogError(f"{where}: an {c['remediation']} property check needs fix or fix_with.")
        if c["remediation"] == "advisory" and (prop.get("fix") or prop.get("fix_with")):
            raise CatalogError(f"{where}: an advisory check proposes no fix.")
        if c["remediation"] == "create":
            raise CatalogError(f"{where}: a property check fixes in place; a create needs an evaluator.")
        spec = Property(
            path=prop["path"], expected=prop["expected"], what=prop["what"], default=prop.get("default"),
            compliant=tuple(prop.get("compliant", ())), fix=prop.get("fix"),
            fix_with=_helper(module, prop["fix_with"], where) if "fix_with" in prop else None,
            is_compliant=_helper(module, prop["compliant_if"], where) if "compliant_if" in prop else None,
            applies=_helper(module, prop["applies_if"], where) if "applies_if" in prop else None,
            caveat=_helper(module, prop["caveat_with"], where) if "caveat_with" in prop else None,
            fail_message=prop.get("fail_message", ""), ignore_case=prop.get("ignore_case", False))
        evaluate = evaluate_property(spec)
    else:
        if c["id"] not in evaluators:
            raise CatalogError(f"{where}: no evaluator: register one in {module.__name__} with @check({c['id']!r}), "
                               "or give the check a [property] table.")
        evaluate = evaluators[c["id"]]
    return Check(id=c["id"], title=c["title"], remediation=c["remediation"], evaluate=evaluate,
                 resource_type=c.get("resource_type", ""), mcsb=c["mcsb"], policy=c.get("policy", ""),
                 risk=c["risk"], disruptive=c.get("disruptive", False), billable=c.get("billable", False),
                 instruction=c.get("instruction", ""), change_title=c.get("change_title", ""),
                 params=params, takes_context=True, reads=reads,
                 creates_by_choice=c.get("creates_by_choice", False))


def build_steps(data: dict[str, Any], source: str, module: Any,
                evaluators: dict[str, Callable[..., Any]]) -> list[Step]:
    """The article's steps from its parsed data file, its module (for named helpers) and the
    evaluators registered in that module."""
    _validate(data, ARTICLE_KEYS, source)
    steps: list[Step] = []
    seen: set[str] = set()
    for raw in data.get("step", []):
        s = _validate(raw, STEP_KEYS, f"{source}: a step")
        checks = tuple(_check(c, source, module, evaluators) for c in s["check"])
        for c in checks:
            if c.id in seen:
                raise CatalogError(f"{source}: check {c.id} is declared twice.")
            seen.add(c.id)
        steps.append(Step(s["id"], data["article"], s["number"], s["title"], s["why"], checks))
    orphans = sorted(set(evaluators) - seen)
    if orphans:
        raise CatalogError(f"{source}: evaluator(s) registered in {module.__name__} without a data entry: "
                           f"{', '.join(orphans)}.")
    return steps


def read_data(article: str) -> tuple[dict[str, Any], str]:
    source = f"steps/{article}.toml"
    text = resources.files(__package__).joinpath(f"{article}.toml").read_text(encoding="utf-8")
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: {exc}") from None


def article_steps(module_name: str) -> list[Step]:
    """Called at the end of a converted article's module: its steps, from `<article>.toml`."""
    module = sys.modules[module_name]
    article = module_name.rsplit(".", 1)[-1]
    data, source = read_data(article)
    evaluators = {cid: fn for cid, (mod, fn) in _REGISTRY.items() if mod == module_name}
    return build_steps(data, source, module, evaluators)


def discover() -> list[tuple[dict[str, Any], list[Step]]]:
    """Every article whose data file ships in the package, in the articles' `order`: its data
    and its steps (from the data, or, for an article still in Python, its module's STEPS)."""
    out = []
    for entry in resources.files(__package__).iterdir():
        if not entry.name.endswith(".toml"):
            continue
        data, source = read_data(entry.name.removesuffix(".toml"))
        _validate(data, ARTICLE_KEYS, source)
        if data["article"] != entry.name.removesuffix(".toml"):
            raise CatalogError(f"{source}: article = {data['article']!r} does not match the file name.")
        module = importlib.import_module(f"{__package__}.{data['article']}")
        steps: list[Step] = module.STEPS
        if data.get("legacy") and data.get("step"):
            raise CatalogError(f"{source}: a legacy article keeps its steps in Python; remove [[step]] or legacy.")
        out.append((data, steps))
    out.sort(key=lambda pair: pair[0]["order"])
    return out
