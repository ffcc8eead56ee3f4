"""`import explainer` (every CLI call, the dashboard's start) loads torch and pandas, not the libraries only some
calls need: Captum, SciPy's statistics, scikit-learn and torch's FLOP counter (with triton) load on first use."""

from __future__ import annotations

import subprocess
import sys

DEFERRED = ("captum", "scipy.stats", "sklearn", "torch.utils.flop_counter")


def test_import_explainer_defers_the_heavy_optional_libraries():
    code = ("import sys, explainer; explainer.tcav; explainer.stats.mean_interval; "
            f"print(','.join(name for name in {DEFERRED!r} if name in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"imported at `import explainer`: {loaded}"


def test_the_deferred_libraries_load_when_a_call_needs_them():
    code = ("import sys, explainer; explainer.stats.mean_interval([1.0, 2.0, 4.0]); "
            "print('scipy.stats' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
