"""The home page's anatomy of the bundled model, shipped as a file: the first paint needs no torch.

    .venv/bin/python dashboards/home_anatomy.py     # rewrites results/home_anatomy.json

The file holds the library's own output – ``explainer.model_anatomy(explainer.load_model())`` and
``explainer.plots.inside.anatomy_figure`` of it – with this command and the versions that made it;
``tests/test_dashboard_apptest.py`` recomputes both and fails when they drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from reports import shipped

PATH = shipped("results/home_anatomy.json")
COMMAND = ".venv/bin/python dashboards/home_anatomy.py"


def read() -> dict[str, Any]:
    """The shipped anatomy: ``figure`` (plotly JSON), ``table`` (records), the headline numbers, how it was made."""
    return json.loads(PATH.read_text())


def compute() -> dict[str, Any]:
    """The same content, computed now by the library (one forward pass of the bundled model)."""
    from importlib import metadata

    import explainer
    from explainer.plots.inside import anatomy_figure

    facts = explainer.model_anatomy(explainer.load_model(device="cpu"))
    return {
        "command": COMMAND, "explainer": explainer.__version__, "torch": metadata.version("torch"),
        "model_name": facts.model_name, "total_params": facts.total_params, "depth": facts.depth,
        "seconds": facts.seconds, "device": facts.device,
        "table": json.loads(facts.table.to_json(orient="records")),
        "figure": json.loads(anatomy_figure(facts).to_json()),
    }


if __name__ == "__main__":
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {PATH}")
