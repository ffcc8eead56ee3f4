"""Self-contained HTML reports: figures (plotly JS inlined), numbers, library versions, hardware.

Notebook use::

    from explainer.report import ReportSection, save_report
    section = ReportSection("Grad-CAM on the cat", figures=[fig], numbers={"deletion AUC": 0.21})
    save_report("cat.html", [section], title="Why a cat?")

The file opens offline in any browser: plotly's JavaScript is embedded once, each figure keeps
its interactivity, and a closing table records the library versions and the hardware that
produced the numbers.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.offline
import torch

from explainer.errors import InputError
from explainer.hardware import cpu_name

#: Distributions whose versions every report records (missing ones are reported as such).
REPORTED_PACKAGES = ("explainer", "torch", "torchvision", "captum", "timm", "numpy", "plotly", "scikit-learn",
                     "streamlit")
#: Height in pixels given to a figure whose layout sets none.
DEFAULT_FIGURE_HEIGHT = 480


@dataclass
class ReportSection:
    """One view of a report: a heading, some prose, figures, named numbers and tables.

    ``numbers`` maps a name to a value (numbers are shown with 4 significant digits);
    ``tables`` maps a caption to rows (a list of dicts sharing keys), e.g. one row per method.
    Put how the numbers were made (method, parameters, seconds, device) into ``numbers`` too.
    """

    title: str
    text: str = ""
    figures: list[go.Figure] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise InputError("A report section needs a non-empty title.")
        for figure in self.figures:
            if not isinstance(figure, go.Figure):
                raise InputError(
                    f"Report figures must be plotly go.Figure objects, got {type(figure).__name__}."
                )


def environment() -> dict[str, dict[str, str]]:
    """Library versions and hardware of this process, as ``{"versions": {...}, "hardware": {...}}``."""
    versions = {"python": platform.python_version()}
    for package in REPORTED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    hardware = {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "memory": _memory_text(),
        "gpu": _gpu_text(),
    }
    return {"versions": versions, "hardware": hardware}


def build_report(
    sections: Sequence[ReportSection],
    *,
    title: str = "explainer report",
    env: Mapping[str, Mapping[str, str]] | None = None,
    created: _dt.datetime | None = None,
) -> str:
    """One self-contained HTML page (plotly JS inlined, no network needed) holding ``sections``.

    ``env`` defaults to :func:`environment` of this process; ``created`` to now (UTC).
    """
    if not sections:
        raise InputError("A report needs at least one section; nothing was given.")
    env = env if env is not None else environment()
    created = created or _dt.datetime.now(_dt.timezone.utc)
    body = [f"<h1>{_esc(title)}</h1>", f"<p class='meta'>Created {_esc(created.isoformat(timespec='seconds'))} "
            f"with explainer {_esc(env.get('versions', {}).get('explainer', '?'))}.</p>"]
    for section in sections:
        body.append(_section_html(section))
    body.append("<section><h2>How these numbers were made</h2>")
    for heading, values in env.items():
        body.append(_table_html(heading.capitalize(), [{"name": k, "value": v} for k, v in values.items()]))
    body.append("</section>")
    return _PAGE.format(title=_esc(title), plotly_js=plotly.offline.get_plotlyjs(), body="\n".join(body))


def save_report(path: str | os.PathLike, sections: Sequence[ReportSection], **options: Any) -> Path:
    """Write :func:`build_report` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"Reports are HTML files; give a path ending in .html, not {target.name!r}.")
    target.write_text(build_report(sections, **options), encoding="utf-8")
    return target


# ----------------------------------------------------------------------------- html
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} .meta {{ color: #666; }}
section {{ border-top: 1px solid #ddd; margin-top: 2em; padding-top: 1em; }}
table {{ border-collapse: collapse; margin: 0.8em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-variant-numeric: tabular-nums; }}
th {{ background: #f4f4f4; }} caption {{ text-align: left; font-weight: 600; padding-bottom: 0.3em; }}
.figure {{ margin: 1em 0; }}
</style>
<script type="text/javascript">{plotly_js}</script>
</head><body>
{body}
</body></html>
"""


def _section_html(section: ReportSection) -> str:
    parts = [f"<section><h2>{_esc(section.title)}</h2>"]
    parts += [f"<p>{_esc(paragraph)}</p>" for paragraph in section.text.split("\n\n") if paragraph.strip()]
    if section.numbers:
        parts.append(_table_html("Numbers", [{"name": k, "value": v} for k, v in section.numbers.items()]))
    for caption, rows in section.tables.items():
        parts.append(_table_html(caption, rows))
    for figure in section.figures:
        parts.append("<div class='figure'>" + figure.to_html(
            full_html=False, include_plotlyjs=False, default_height=DEFAULT_FIGURE_HEIGHT,
            config={"displaylogo": False, "responsive": True},
        ) + "</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _table_html(caption: str, rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{_esc(column)}</th>" for column in columns)
    lines = ["".join(f"<td>{_esc(_format(row.get(column, '')))}</td>" for column in columns) for row in rows]
    cells = "".join(f"<tr>{line}</tr>" for line in lines)
    return f"<table><caption>{_esc(caption)}</caption><tr>{head}</tr>{cells}</table>"


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(item) for item in value)
    return str(value)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------------- hardware
def _memory_text() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{total / 2**30:.1f} GiB"


#: What the report's "gpu" row says on a machine without a usable CUDA GPU.
NO_GPU_TEXT = "none (CPU only)"


def _gpu_text() -> str:
    """Each CUDA device as ``name (memory GiB)``, comma-separated; :data:`NO_GPU_TEXT` without one."""
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return NO_GPU_TEXT
    devices = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        devices.append(f"{properties.name} ({properties.total_memory / 2**30:.1f} GiB)")
    return ", ".join(devices)
