"""The registry is the whole contract: a method declared here, outside the package, works everywhere.

It runs through explain, check_faithfulness, estimate_cost and the time budget, the CLI
(in-process and the console script, via a plugin module) and the dashboard's method picker with
widgets generated from its schema – with no edit to the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import explainer
from explainer.attribution.estimate import TIMING_BATCH, check_budget, estimate_cost
from explainer.attribution.registry import METHODS, Job, MethodSpec, Output, Param, get_method, register_method
from explainer.cli import main as cli_main
from explainer.errors import InputError

TESTS = Path(__file__).resolve().parent
DASHBOARDS = TESTS.parent / "dashboards"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ a method from outside the package
def gradient_times(job: Job) -> Output:
    """The gradient of the target score, scaled by ``factor``: one forward + backward pass per image."""
    score = job.module(job.inputs).gather(1, job.target_index()).sum()
    (grad,) = torch.autograd.grad(score, job.inputs)
    return Output(grad * job.params["factor"])


GRADIENT_TIMES = MethodSpec(
    name="gradient_times_k", title="Gradient × k", kind="gradient", signed=True,
    description="The plain gradient of the class score, times a constant.",
    params=(Param("factor", float, 2.0, low=0.0, high=10.0, help="scale of the gradient"),),
    runner=gradient_times,
)


def path_gradient(job: Job) -> Output:
    """Input × the mean gradient at ``passes`` points from 0 to the input (a coarse Riemann IG)."""
    passes = job.params["passes"]
    total = torch.zeros_like(job.inputs)
    for step in range(1, passes + 1):
        score = job.module(job.inputs * step / passes).gather(1, job.target_index()).sum()
        total += torch.autograd.grad(score, job.inputs)[0] * passes / step  # d/dx f(a·x) = a·f'(a·x)
    return Output(job.inputs.detach() * total / passes)


def register_test_methods() -> None:
    """Register both test methods (once per process; plugin modules and the app script call it too)."""
    if GRADIENT_TIMES.name not in METHODS:
        register_method(GRADIENT_TIMES)
    if "path_gradient_k" not in METHODS:
        register_method(
            name="path_gradient_k", title="Path gradient", kind="gradient", signed=True,
            description="Input × the mean gradient along a straight path from zero, at `passes` points.",
            params=(Param("passes", int, 4, low=1, high=10**9, help="points on the path"),),
            cost=lambda params, size: params["passes"],
        )(path_gradient)


register_test_methods()


@pytest.fixture(scope="module")
def tiny() -> explainer.Classifier:
    generator = torch.Generator().manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(4, 3))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return explainer.Classifier.from_module(module, input_size=16)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def cat_file(tmp_path_factory, photos) -> Path:
    path = tmp_path_factory.mktemp("registry") / "cat.png"
    photos["cat"].save(path)
    return path


# ------------------------------------------------------------------------------- the schema
def test_param_validates_and_coerces_and_bools_are_not_ints():
    steps = Param("n", int, 4, low=1, high=10)
    assert steps.validate(7) == 7 and steps.validate(8.0) == 8 and isinstance(steps.validate(8.0), int)
    for bad in (True, 0, 11, 2.5, "3", None):
        with pytest.raises(InputError, match="n must be an integer from 1 to 10"):
            steps.validate(bad)
    scale = Param("scale", float, 0.5, low=0.0)
    assert scale.validate(2) == 2.0 and isinstance(scale.validate(2), float)
    with pytest.raises(InputError, match="non-negative number"):
        scale.validate(False)
    with pytest.raises(InputError, match="non-negative number"):
        scale.validate(float("nan"))
    flag = Param("flag", bool, False)
    assert flag.validate(True) is True
    with pytest.raises(InputError, match="true or false"):
        flag.validate(1)
    kind = Param("kind", str, "a", choices=("a", "b"), help="which one")
    with pytest.raises(InputError, match=r"one of: a, b, got 'c' \(which one\)"):
        kind.validate("c")
    window = Param("window", int, None, low=1, optional=True)
    assert window.validate(None) is None and window.parse("none") is None and window.parse("12") == 12


def test_param_parses_command_line_text():
    assert Param("n", int, 4, low=1).parse("1e3") == 1000
    assert Param("x", float, 0.5).parse("0.25") == 0.25
    assert Param("on", bool, False).parse("yes") is True and Param("on", bool, True).parse("off") is False
    assert Param("base", str, "zero", choices=("zero", "blur")).parse("blur") == "blur"
    with pytest.raises(InputError, match="positive integer, got 'many'"):
        Param("n", int, 4, low=1).parse("many")
    with pytest.raises(InputError, match="true or false"):
        Param("on", bool, False).parse("maybe")


def test_declarations_are_checked_when_made():
    with pytest.raises(InputError, match="default|must be"):
        Param("n", int, 0, low=1)  # a default outside its own range
    with pytest.raises(InputError, match="type must be one of"):
        Param("n", list, [])
    with pytest.raises(InputError, match="identifier"):
        MethodSpec(name="two words", title="t", kind="gradient", signed=False, description="d", runner=gradient_times)
    with pytest.raises(InputError, match="repeat"):
        MethodSpec(name="twice", title="t", kind="gradient", signed=False, description="d", runner=gradient_times,
                   params=(Param("a", int, 1), Param("a", int, 2)))
    with pytest.raises(InputError, match="does not take steps"):
        MethodSpec(name="smoky", title="t", kind="gradient", signed=False, description="d", runner=gradient_times,
                   params=(Param("n", int, 4, low=1),), smoke_params={"steps": 1})
    with pytest.raises(InputError, match="n must be a positive integer"):
        MethodSpec(name="smoky", title="t", kind="gradient", signed=False, description="d", runner=gradient_times,
                   params=(Param("n", int, 4, low=1),), smoke_params={"n": 0})
    with pytest.raises(InputError, match="already registered.*replace=True"):
        register_method(GRADIENT_TIMES)
    assert register_method(GRADIENT_TIMES, replace=True) is GRADIENT_TIMES


def test_get_method_names_close_matches_and_every_method():
    with pytest.raises(InputError) as info:
        get_method("gradient_time_k")
    text = str(info.value)
    assert "Did you mean 'gradient_times_k'" in text and "integrated_gradients" in text and "path_gradient_k" in text
    assert "gradient_times_k" in explainer.list_methods() and get_method("gradcam").needs_layer
    assert "gradient_times_k" in explainer.list_methods("gradient")
    assert "gradient_times_k" not in explainer.list_methods("cam")


def test_every_module_of_methods_is_in_the_one_list_that_registers_them():
    import pkgutil

    from explainer.attribution import methods

    families = sorted(info.name for info in pkgutil.iter_modules(methods.__path__) if not info.name.startswith("_"))
    assert sorted(methods.MODULES) == families
    declared = {spec.runner.__module__ for spec in METHODS.values() if spec.runner.__module__.startswith("explainer.")}
    assert declared == {f"explainer.attribution.methods.{name}" for name in families}


@pytest.mark.parametrize("first", ["explainer.attribution.registry", "explainer.attribution.methods.lrp",
                                   "explainer.attribution.explanation", "explainer"])
def test_the_registry_holds_every_builtin_whatever_is_imported_first(first):
    """Registration is one explicit list run by ``explainer.attribution``: any first import sees the same
    registry, in the same order, and none of them imports Captum."""
    code = (f"import importlib, sys; importlib.import_module({first!r}); "
            "from explainer.attribution.registry import list_methods; "
            "print(','.join(list_methods())); print('captum' in sys.modules)")
    names, captum = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True).stdout.split()
    builtin = [name for name, spec in METHODS.items() if spec.runner.__module__.startswith("explainer.")]
    assert names.split(",") == builtin and captum == "False"


def test_every_builtin_declares_a_schema_with_defaults_inside_it():
    for name in explainer.list_methods():
        spec = get_method(name)
        assert spec.name == name and spec.title and spec.description and spec.kind
        assert spec.resolve({}) == spec.defaults
        assert spec.evaluations({}, (224, 224)) >= 1
    assert get_method("integrated_gradients").evaluations({"n_steps": 10}, (224, 224)) == 12
    assert get_method("occlusion").evaluations({"window": 112, "stride": 112}, (224, 224)) == 5


# ----------------------------------------------------------------------------- the library
def test_registered_method_runs_through_explain(tiny, images):
    explanation = explainer.explain(tiny, images, "gradient_times_k", target=[0, 2], factor=3)
    inputs = tiny.normalize(images).requires_grad_(True)
    score = tiny.module(inputs)[[0, 1], [0, 2]].sum()
    (grad,) = torch.autograd.grad(score, inputs)
    assert torch.allclose(explanation.attributions, 3.0 * grad, atol=1e-6)
    assert explanation.params["factor"] == 3.0 and isinstance(explanation.params["factor"], float)
    assert explanation.method == "gradient_times_k" and explanation.spec is GRADIENT_TIMES
    assert explanation.to_dict()["params"]["factor"] == 3.0
    with pytest.raises(InputError, match="takes no parameter .steps.* gradient_times_k takes factor"):
        explainer.explain(tiny, images, "gradient_times_k", steps=3)
    with pytest.raises(InputError, match="factor must be a number from 0 to 10, got True"):
        explainer.explain(tiny, images, "gradient_times_k", factor=True)


def test_registered_method_runs_through_check_faithfulness(tiny, images):
    explanation = explainer.explain(tiny, images, "gradient_times_k", target=0, factor=2.0)
    report = explainer.check_faithfulness(tiny, explanation, steps=4, random_seeds=1, randomization_steps=2)
    assert report.targets == [0, 0]
    for name in ("deletion", "insertion", "random_deletion"):
        values = torch.as_tensor(report.aucs[name], dtype=torch.float64)
        assert values.shape == (2,) and torch.isfinite(values).all()
    assert report.randomization_correlation is not None


def test_declared_cost_drives_estimate_and_matches_what_runs(tiny, images):
    cost = estimate_cost(tiny, images, "path_gradient_k", passes=5)
    assert cost.evaluations == 5 and cost.images == 2 and cost.pass_kind == "forward+backward"
    seen: list[int] = []
    handle = tiny.module.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    try:
        explainer.explain(tiny, images, "path_gradient_k", target=0, passes=5)
    finally:
        handle.remove()
    assert sum(seen) == cost.evaluations * cost.images
    assert estimate_cost(tiny, images, "gradient_times_k").evaluations == 1  # the default cost: one pass


def test_time_budget_refuses_before_any_work(tiny, images):
    estimate_cost(tiny, images, "path_gradient_k")  # times the pass once, so the refusal below runs no model pass
    seen: list[int] = []
    handle = tiny.module.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    started = time.perf_counter()
    try:
        with pytest.raises(InputError, match=r"over the time budget of 1\.0 s.*passes=4 \(the default\)"):
            explainer.explain(tiny, images, "path_gradient_k", passes=10**8, budget_seconds=1.0)
        with pytest.raises(InputError, match="over the time budget"):
            check_budget(tiny, images, "path_gradient_k", {"passes": 10**8}, budget_seconds=1.0)
    finally:
        handle.remove()
    assert time.perf_counter() - started < 5 and all(size <= TIMING_BATCH for size in seen)
    assert check_budget(tiny, images, "path_gradient_k", {"passes": 10**8}, budget_seconds=None) is None
    assert check_budget(tiny, images, "path_gradient_k", {"passes": 2}) is None  # too cheap to time
    with pytest.raises(InputError, match="budget_seconds must be a positive number"):
        check_budget(tiny, images, "saliency", {}, budget_seconds=0)


# ------------------------------------------------------------------------------------ CLI
def test_cli_explain_and_check_take_a_registered_method_and_its_param(cat_file, tmp_path, capsys):
    assert cli_main(["explain", str(cat_file), "--method", "gradient_times_k", "--param", "factor=3",
                     "--no-png", "--out", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in rows] == ["gradient_times_k"] and rows[0]["params"]["factor"] == 3.0
    assert cli_main(["check", str(cat_file), "--method", "gradient_times_k", "--param", "gradient_times_k.factor=0.5",
                     "--steps", "4", "--seeds", "1", "--no-randomization", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in rows] == ["gradient_times_k"] and rows[0]["deletion_auc"] is not None


def test_cli_param_and_method_errors_go_to_stderr_with_status_2(cat_file, capsys):
    cases = [
        (["--method", "gradient_times_k", "--param", "factor=11"], "factor must be a number from 0 to 10"),
        (["--method", "gradient_times_k", "--param", "steps=3"], "--param steps is not a parameter of gradient_times_k"),
        (["--method", "gradcam", "--param", "saliency.abs=1"], "'saliency' is not one of the chosen methods"),
        (["--method", "gradient_times_k", "--param", "factor"], "--param needs NAME=VALUE"),
        (["--method", "gradient_time_k"], "Did you mean 'gradient_times_k'"),
    ]
    for extra, message in cases:
        assert cli_main(["explain", str(cat_file), "--no-png", "--json", *extra]) == 2, extra
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err, (extra, captured.err)
    # Refused before any work; the per-input loop may report it as the failed image's row (status 1).
    code = cli_main(["explain", str(cat_file), "--no-png", "--json", "--method", "integrated_gradients",
                     "--param", "n_steps=20000000"])
    captured = capsys.readouterr()
    assert code in (1, 2) and "over the time budget" in captured.err + captured.out
    assert cli_main(["explain", str(cat_file), "--no-such-flag"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("spelling", [["--method", "gradcam", "--method", "saliency"], ["--method", "gradcam", "saliency"]])
def test_check_returns_every_method_in_both_spellings(cat_file, spelling, capsys):
    assert cli_main(["check", str(cat_file), *spelling, "--steps", "4", "--seeds", "1", "--no-randomization",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["method"] for row in rows] == ["gradcam", "saliency"]


def test_methods_command_lists_the_schema(capsys):
    assert cli_main(["methods", "gradient_times_k", "integrated_gradients", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["gradient_times_k"]["params"] == [{
        "name": "factor", "type": "float", "default": 2.0, "low": 0.0, "high": 10.0, "choices": None,
        "optional": False, "help": "scale of the gradient",
    }]
    assert [p["name"] for p in listed["integrated_gradients"]["params"]] == ["n_steps", "integration", "baseline"]


def _console_script() -> str:
    script = Path(sys.executable).with_name("explainer")
    return str(script) if script.exists() else shutil.which("explainer") or "explainer"


def test_console_script_runs_a_plugin_method(cat_file, tmp_path):
    plugin = tmp_path / "my_methods.py"
    plugin.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
                      "from test_registry import register_test_methods\nregister_test_methods()\n")
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path),
           "EXPLAINER_PLUGINS": "my_methods", "HOME": os.environ.get("HOME", str(tmp_path))}
    done = subprocess.run(
        [_console_script(), "explain", str(cat_file), "--method", "gradient_times_k", "--param", "factor=4",
         "--no-png", "--out", str(tmp_path / "out"), "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows[0]["method"] == "gradient_times_k" and rows[0]["params"]["factor"] == 4.0


def test_a_plugin_that_cannot_be_imported_is_an_error_with_status_2(monkeypatch, capsys):
    monkeypatch.setenv("EXPLAINER_PLUGINS", "no_such_plugin")
    assert cli_main(["methods"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "EXPLAINER_PLUGINS names 'no_such_plugin'" in captured.err


# ------------------------------------------------------------------------------ dashboard
APP = f"""
import sys
sys.path[:0] = [{str(DASHBOARDS)!r}, {str(TESTS)!r}]
import streamlit as st
from test_registry import register_test_methods
register_test_methods()
from method_settings import method_picker, method_settings

methods = method_picker(key="picker", default=["gradient_times_k"])
for method in methods:
    st.json({{method: method_settings(method, key="set_" + method)}})
"""


def test_dashboard_picker_offers_the_method_with_widgets_from_its_schema():
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_string(APP, default_timeout=120).run()
    assert not app.exception, app.exception
    picker = app.multiselect[0]
    assert "gradient_times_k" in picker.options or "Gradient × k (gradient)" in picker.options
    assert picker.value == ["gradient_times_k"]
    slider = app.slider(key="set_gradient_times_k_factor")
    assert (slider.min, slider.max, slider.value) == (0.0, 10.0, 2.0) and "factor" in slider.label
    slider.set_value(3.5).run()
    assert json.loads(app.json[0].value) == {"gradient_times_k": {"factor": 3.5}}
    picker.set_value(["gradient_times_k", "occlusion", "integrated_gradients"]).run()
    assert not app.exception, app.exception
    assert app.checkbox(key="set_occlusion_window_auto").value is True  # optional: "automatic" by default
    assert app.selectbox(key="set_integrated_gradients_baseline").options == ["zero", "black", "white", "blur"]
    app.checkbox(key="set_occlusion_window_auto").uncheck().run()
    window = app.slider(key="set_occlusion_window")
    assert window.value == window.min == 4
    shown = {key: value for item in app.json for key, value in json.loads(item.value).items()}
    assert shown["occlusion"]["window"] == 4 and shown["integrated_gradients"]["n_steps"] == 50
