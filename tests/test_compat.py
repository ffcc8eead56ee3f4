"""The removal table (explainer.compat.REMOVALS): every deprecated spelling still works and warns (the silent
ones still work), each goes away in a release after this one, and every deprecation in the package is listed."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import explainer
from explainer.cli import build_parser
from explainer.commands._options import _OldFlag
from explainer.compat import KINDS, REMOVALS, Deprecated
from explainer.errors import InputError

PACKAGE = Path(explainer.__file__).parent
#: A keyword no function takes: a call carrying it stops at the keyword check, after the warning and before any work.
PROBE = "compat_probe"
#: Kinds whose old call is made with PROBE (the others warn inside the function, after Python binds the arguments).
PROBED = ("positional arguments", "keyword name", "argument order")
CALLED = ("function name", *PROBED, "call form")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _resolve(dotted: str) -> Any:
    """The object at ``dotted`` (``explainer.Classifier.predict``), importing the modules on the way if needed."""
    parts = dotted.split(".")
    value: Any = importlib.import_module(parts[0])
    for end, part in enumerate(parts[1:], start=2):
        try:
            value = getattr(value, part)
        except AttributeError:
            value = importlib.import_module(".".join(parts[:end]))
    return value


def _deprecations(call: Any) -> tuple[list[str], Any]:
    """Run ``call()``: the DeprecationWarning messages it gave and its result (or the exception it raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as error:  # the old call's placeholders are not real arguments
            result = error
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)], result


def _old_call(entry: Deprecated) -> tuple[Any, list[Any], dict[str, Any]]:
    """The function of ``entry.old`` (``explainer.ablate(classifier, images, layer, channels)``) and a
    placeholder for each argument it names (and for ``self`` when it is a method)."""
    name, _, arguments = entry.old.partition("(")
    names = [part.strip() for part in arguments.rstrip(")").split(",") if part.strip()]
    positional: list[Any] = [object() for part in names if "=" not in part]
    keywords: dict[str, Any] = {part.split("=")[0]: object() for part in names if "=" in part}
    if inspect.isclass(_resolve(name.rpartition(".")[0])):
        positional.insert(0, object())  # self
    if entry.kind in PROBED:
        keywords[PROBE] = 1
    return _resolve(name), positional, keywords


def test_the_table_is_well_formed():
    assert len({entry.old for entry in REMOVALS}) == len(REMOVALS), "one row per old spelling"
    for entry in REMOVALS:
        assert entry.kind in KINDS, entry
        assert entry.new and entry.new != entry.old, entry
        assert entry.removed_in is not None or entry.kind in ("re-export", "CLI flag"), f"{entry.old}: warns, so it has a removal release"


@pytest.mark.parametrize("entry", [e for e in REMOVALS if e.removed_in], ids=lambda e: e.old)
def test_the_current_version_is_below_each_removal_release(entry):
    assert _version(explainer.__version__) < _version(entry.removed_in), (
        f"{entry.old} should be gone in {entry.removed_in}: remove it (and its row) before releasing "
        f"{explainer.__version__}")


@pytest.mark.parametrize("entry", [e for e in REMOVALS if e.kind == "module path"], ids=lambda e: e.old)
def test_old_module_paths_import_the_new_module_with_a_warning(entry):
    sys.modules.pop(entry.old, None)  # imported before (another test): import it afresh, as a user's first import
    messages, alias = _deprecations(lambda: importlib.import_module(entry.old))
    assert any(f"{entry.old} moved to {entry.new}" in message for message in messages), messages
    new = importlib.import_module(entry.new)
    public = [name for name in vars(new) if not name.startswith("_")]
    assert public and all(getattr(alias, name) is getattr(new, name) for name in public)


def test_the_01_path_of_the_registry_is_its_package_now():
    from explainer.attribution import METHODS, explain

    assert explain is explainer.explain and "gradcam" in METHODS


@pytest.mark.parametrize("entry", [e for e in REMOVALS if e.kind in CALLED], ids=lambda e: e.old)
def test_old_calls_warn_and_say_what_to_write(entry):
    function, positional, keywords = _old_call(entry)
    messages, result = _deprecations(lambda: function(*positional, **keywords))
    assert any(entry.new in message for message in messages), f"{entry.old}: warned {messages}"
    if entry.kind in PROBED:  # the call reached the current signature with every old argument renamed
        assert isinstance(result, (InputError, TypeError)) and PROBE in str(result), repr(result)
    if entry.kind == "positional arguments":
        assert any(f"pass {entry.new} by keyword" in message for message in messages), messages
        current = [p.name for p in inspect.signature(function).parameters.values()
                   if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
        assert entry.old.partition("(")[2].split(", ")[: len(current)] == current, "the old call starts as the new one"
        with pytest.raises(TypeError, match="positional argument"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            function(*positional, object(), **keywords)  # one more than the old signature had


@pytest.mark.parametrize("entry", [e for e in REMOVALS if e.kind == "attribute"], ids=lambda e: e.old)
def test_old_attribute_names_read_the_new_one_with_a_warning(entry):
    owner, _, old = entry.old.rpartition(".")
    cls = _resolve(owner)
    result = cls.__new__(cls)
    object.__setattr__(result, entry.new, "the value")
    messages, value = _deprecations(lambda: getattr(result, old))
    assert value == "the value"
    assert any(f"{cls.__name__}.{old} is now .{entry.new}" in message for message in messages), messages


@pytest.mark.parametrize("entry", [e for e in REMOVALS if e.kind == "re-export"], ids=lambda e: e.old)
def test_re_exported_names_are_the_objects_at_their_new_place(entry):
    messages, value = _deprecations(lambda: _resolve(entry.old))
    assert value is _resolve(entry.new) and messages == []


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flag_entry(command: str, flag: str) -> Deprecated | None:
    rows = {entry.old: entry for entry in REMOVALS if entry.kind == "CLI flag"}
    return rows.get(f"{command} {flag}", rows.get(flag))


def test_every_hidden_old_flag_is_in_the_table_and_still_works(capsys):
    seen = set()
    for command, parser in _subcommands().items():
        for action in parser._actions:
            if action.help != argparse.SUPPRESS or not action.option_strings:
                continue
            for flag in action.option_strings:
                entry = _flag_entry(command, flag)
                assert entry is not None, f"explainer {command} {flag} is a hidden flag missing from compat.REMOVALS"
                seen.add(entry.old)
                namespace = argparse.Namespace()
                action(parser, namespace, "3", flag)
                assert getattr(namespace, action.dest) == "3", f"{command} {flag}"
                note = capsys.readouterr().err
                if entry.removed_in:
                    assert isinstance(action, _OldFlag) and f"{flag} is deprecated" in note and entry.new in note
                else:
                    assert note == "", f"{command} {flag} is listed as silent"
    assert seen == {entry.old for entry in REMOVALS if entry.kind == "CLI flag"}, "a CLI flag row matches no flag"


def test_the_old_positional_dataset_name_still_works(capsys):
    from explainer.commands.evaluate import _data

    (entry,) = [e for e in REMOVALS if e.kind == "CLI argument"]
    assert entry.old == "evaluate DATASET"
    assert _data(build_parser().parse_args(["evaluate", "digits"])) == "digits"
    assert entry.new in capsys.readouterr().err


# ------------------------------------------------------------ every deprecation is in the table
def _sources() -> dict[str, ast.Module]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = ast.parse(path.read_text())
    return modules


def _table_objects(kinds: tuple[str, ...]) -> set[int]:
    return {id(_resolve(entry.old.partition("(")[0])) for entry in REMOVALS if entry.kind in kinds}


def test_every_legacy_positional_use_is_in_the_table():
    listed = _table_objects(("positional arguments", "keyword name"))
    missing = []
    for module, tree in _sources().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) and not isinstance(node, ast.Module):
                continue
            for child in node.body:
                if isinstance(child, ast.FunctionDef) and any(
                        isinstance(d, ast.Call) and getattr(d.func, "id", "") == "legacy_positional"
                        for d in child.decorator_list):
                    owner = importlib.import_module(module)
                    if isinstance(node, ast.ClassDef):
                        owner = getattr(owner, node.name)
                    if id(getattr(owner, child.name)) not in listed:
                        missing.append(f"{module}.{child.name}")
    assert missing == [], "decorated with legacy_positional but not in compat.REMOVALS"


def test_every_deprecated_alias_is_in_the_table():
    listed = {entry.old.rpartition(".")[::2] for entry in REMOVALS if entry.kind == "attribute"}
    listed_classes = {(id(_resolve(owner)), name) for owner, name in listed}
    missing = []
    for module, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    if (isinstance(child, ast.Assign) and isinstance(child.value, ast.Call)
                            and getattr(child.value.func, "id", "") == "deprecated_alias"):
                        old = child.value.args[0].value  # type: ignore[attr-defined]
                        cls = getattr(importlib.import_module(module), node.name)
                        if (id(cls), old) not in listed_classes:
                            missing.append(f"{module}.{node.name}.{old}")
    assert missing == [], "deprecated_alias attributes missing from compat.REMOVALS"


def test_every_module_that_warns_of_a_deprecation_has_its_rows_in_the_table():
    listed = {"explainer.compat"} | {
        _resolve(entry.old.partition("(")[0]).__module__ for entry in REMOVALS if entry.kind in CALLED}
    warning = {module for module, tree in _sources().items()
               if any(isinstance(node, ast.Name) and node.id == "DeprecationWarning" for node in ast.walk(tree))}
    assert warning - listed == set(), "these modules warn of deprecations that compat.REMOVALS does not list"
