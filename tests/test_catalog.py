"""The catalog's structure: data files and evaluators agree, the data is validated on load, and
every check emits only the remediation kind its label declares."""

from __future__ import annotations

import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

from ztwizard.estate import load_estate_file
from ztwizard.inventory import Inventory
from ztwizard.sandbox.estates import reference, scale
from ztwizard.steps import ARTICLES, CHECK_BY_ID, STEPS
from ztwizard.steps._base import CatalogError, Check, Context, kind_of
from ztwizard.steps.catalog import build_steps

ROOT = Path(__file__).resolve().parent.parent
ESTATES = ROOT / "tests" / "data" / "estates"


def estates() -> list[tuple[str, Inventory]]:
    out = [("reference", Inventory.from_resources(reference.build())),
           ("scale", Inventory.from_resources(scale.build(60))),
           ("empty", Inventory.from_resources([]))]
    for path in sorted(ESTATES.glob("*.json")):
        out.append((path.name, Inventory.from_resources(load_estate_file(path))))
    return out


def test_every_check_emits_only_what_its_label_declares_and_stamps_its_own_id():
    """Check.run raises CatalogError on a mismatched kind; here every check meets every estate."""
    emitted: dict[str, set[str]] = {}
    for name, inv in estates():
        for check in CHECK_BY_ID.values():
            result = check.run(inv)  # raises on a label mismatch
            assert all(f.check == check.id for f in result.findings), (name, check.id)
            assert all(c.check == check.id for c in result.changes), (name, check.id)
            emitted.setdefault(check.id, set()).update(kind_of(c) for c in result.changes)
    for cid, kinds in emitted.items():
        assert kinds <= CHECK_BY_ID[cid].emits(), cid
    # an auto fix or a create that never proposes anything on the reference estate would be a wrong label
    silent = sorted(cid for cid, kinds in emitted.items() if not kinds and CHECK_BY_ID[cid].remediation != "advisory")
    assert set(silent) <= {"storage-3d", "vm-4b", "hub-1e", "hub-2c"}, silent  # each proven in tests/steps


def test_the_context_refuses_a_kind_other_than_the_label():
    def evaluate(ctx: Context) -> None:
        ctx.create("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/rt", {},
                   anchor="x", params={})

    wrong = Check(id="x-1a", title="t", remediation="auto-patch", evaluate=evaluate, takes_context=True)
    with pytest.raises(CatalogError, match="x-1a is labelled 'auto-patch' but proposed a create"):
        wrong.run(Inventory.from_resources([]))


def test_articles_come_from_the_data_files_in_order():
    files = sorted((ROOT / "steps").glob("*.toml"))
    data = sorted((tomllib.loads(f.read_text()) for f in files), key=lambda d: d["order"])
    assert list(ARTICLES) == [d["article"] for d in data]
    assert [s.article for s in STEPS] == sorted((s.article for s in STEPS), key=list(ARTICLES).index)
    storage = next(d for d in data if d["article"] == "storage")
    assert [s.id for s in STEPS if s.article == "storage"] == [s["id"] for s in storage["step"]]
    assert [c.id for s in STEPS if s.article == "storage" for c in s.checks] == \
        [c["id"] for s in storage["step"] for c in s["check"]]


def module(**helpers: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__="ztwizard.steps.fake", **helpers)


def article(*checks: dict[str, Any]) -> dict[str, Any]:
    return {"article": "fake", "title": "Fake", "order": 9,
            "step": [{"id": "fake-1", "number": 1, "title": "T", "why": "W", "check": list(checks)}]}


def prop_check(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "fake-1a", "title": "T", "remediation": "auto-patch", "risk": "R", "mcsb": "DP-3",
                         "resource_type": "Microsoft.Storage/storageAccounts",
                         "property": {"path": "properties.x", "expected": True, "what": "account",
                                      "fix": {"properties.x": True}}}
    c.update(over)
    return c


def test_a_new_single_property_check_is_pure_data():
    (step,) = build_steps(article(prop_check()), "steps/fake.toml", module(), {})
    (check,) = step.checks
    acct = {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/st",
            "name": "st", "type": "Microsoft.Storage/storageAccounts", "properties": {"x": False}}
    result = check.run(Inventory.from_resources([acct]))
    assert [f.status for f in result.findings] == ["fail"]
    assert result.changes[0].body == {"properties": {"x": True}} and result.changes[0].check == "fake-1a"


def test_a_check_declares_the_child_reads_it_needs_and_when():
    def shared(acct: dict[str, Any], inv: Inventory) -> bool:
        return acct["properties"].get("x") is not False

    data = article(prop_check(reads=[{"child": "Microsoft.Storage/storageAccounts/fileServices",
                                      "of": "Microsoft.Storage/storageAccounts", "when": "shared"}]))
    (step,) = build_steps(data, "steps/fake.toml", module(shared=shared), {})
    (read,) = step.checks[0].reads
    assert (read.child, read.of) == ("Microsoft.Storage/storageAccounts/fileServices", "Microsoft.Storage/storageAccounts")
    inv = Inventory()
    assert read.needed({"properties": {}}, inv) and not read.needed({"properties": {"x": False}}, inv)


@pytest.mark.parametrize("data, evaluators, message", [
    (article(prop_check(colour="red")), {}, "steps/fake.toml: check fake-1a: unknown key 'colour'"),
    (article(prop_check(remediation="autopatch")), {}, "check fake-1a: remediation = 'autopatch' is not one of"),
    (article(prop_check(billable="yes")), {}, "check fake-1a: billable = 'yes' is not a bool"),
    (article(prop_check(property={"path": "p", "expected": 1, "what": "w", "fix": {"p": 1}, "bogus": 1})), {},
     "check fake-1a: property: unknown key 'bogus'"),
    (article(prop_check(property={"path": "p", "expected": 1, "what": "w"})), {},
     "check fake-1a: an auto-patch property check needs fix"),
    (article(prop_check(property={"path": "p", "expected": 1, "what": "w", "fix_with": "nowhere"})), {},
     "check fake-1a: ztwizard.steps.fake has no function 'nowhere'"),
    (article({k: v for k, v in prop_check().items() if k != "property"}), {},
     "check fake-1a: no evaluator: register one in ztwizard.steps.fake with @check('fake-1a')"),
    (article(prop_check()), {"fake-1z": lambda ctx: None},
     "evaluator(s) registered in ztwizard.steps.fake without a data entry: fake-1z"),
    (article(prop_check(param=[{"name": "n", "type": "str", "rule": "name:nothing", "help": "h"}])), {},
     "param: rule = 'name:nothing' is not a rule"),
    (article(prop_check(), prop_check()), {}, "check fake-1a is declared twice"),
    (article(prop_check(creates_by_choice=True)), {}, "creates_by_choice is for an auto check whose parameter"),
    ({"article": "fake", "title": "Fake"}, {}, "steps/fake.toml: missing order"),
    (article(prop_check(reads=[{"child": "Microsoft.Storage/storageAccounts/fileServices"}])), {},
     "check fake-1a: reads: missing of"),
    (article(prop_check(reads=[{"child": "X/y/z", "of": "X/y", "if": "always"}])), {},
     "check fake-1a: reads: unknown key 'if'"),
    (article(prop_check(reads=[{"child": "fileServices", "of": "Microsoft.Storage/storageAccounts"}])), {},
     "must be two full resource types"),
    (article(prop_check(reads=[{"child": "X/y/z", "of": "X/y", "when": "nowhere"}])), {},
     "check fake-1a: reads: ztwizard.steps.fake has no function 'nowhere'"),
    (article(prop_check(reads={"child": "X/y/z", "of": "X/y"})), {}, "reads = {"),
])
def test_bad_data_is_refused_naming_file_and_check(data, evaluators, message):
    with pytest.raises(CatalogError) as err:
        build_steps(data, "steps/fake.toml", module(), evaluators)
    assert message in str(err.value), str(err.value)


def test_catalog_code_counts_nothing():
    """A fifth article is a new data file and module: no count of steps or checks in the code."""
    for path in (ROOT / "steps").glob("*.py"):
        text = path.read_text()
        for count in ("== 23", "== 89", "range(23)", "[:23]"):
            assert count not in text, (path.name, count)


def test_every_package_is_listed_for_setuptools():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ztwizard").rglob("__init__.py")}
    assert found | {"ztwizard.steps"} == listed
    assert pyproject["tool"]["setuptools"]["package-dir"] == {"ztwizard.steps": "steps"}
