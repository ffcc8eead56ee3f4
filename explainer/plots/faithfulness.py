"""Figures for faithfulness evidence: deletion/insertion curves, the randomization cascade, method agreement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.errors import InputError
from explainer.evidence.faithfulness import RANDOMIZATION_THRESHOLD, FaithfulnessReport, area_under_curve

_COLORS = {"morf": "#d62728", "lerf": "#1f77b4", "insertion": "#2ca02c", "random": "#7f7f7f"}


def faithfulness_curves(report: FaithfulnessReport, image: int | None = None) -> go.Figure:
    """Deletion (MoRF, LeRF) and insertion curves with the random reference as a mean ± std band.

    ``image`` picks one image of the report; None averages the curves over all images.
    """
    count = len(report.targets)
    if image is not None and not 0 <= image < count:
        raise InputError(f"image must be between 0 and {count - 1} (the report covers {count} image(s)), got {image}.")
    pick = slice(None) if image is None else slice(image, image + 1)
    x = report.fractions.astype(np.float32)
    title = (
        f"{report.method} on {report.labels[image]} (image {image})" if image is not None
        else f"{report.method}, mean over {count} image(s)"
    )
    figure = make_subplots(
        rows=1, cols=2, shared_yaxes=True,
        subplot_titles=("Deletion (MoRF should fall fastest)", "Insertion on a blurred canvas (should rise fastest)"),
    )
    deletion_mean, deletion_std = (v[pick].mean(axis=0) for v in report.random_band("deletion"))
    insertion_mean, insertion_std = (v[pick].mean(axis=0) for v in report.random_band("insertion"))
    _band(figure, x, deletion_mean, deletion_std, "random map (reference)", col=1, show_legend=True)
    _band(figure, x, insertion_mean, insertion_std, "random order", col=2, show_legend=False)
    for name, curve, col, key in (
        ("most relevant first (MoRF)", report.morf, 1, "morf"),
        ("least relevant first (LeRF)", report.lerf, 1, "lerf"),
        ("insertion, most relevant first", report.insertion, 2, "insertion"),
    ):
        y = curve[pick].mean(axis=0)
        auc = float(area_under_curve(x, y))
        figure.add_trace(
            go.Scatter(x=x, y=y.astype(np.float32), mode="lines+markers", name=f"{name}, AUC {auc:.3f}",
                       line={"color": _COLORS[key]}, marker={"size": 4}),
            row=1, col=col,
        )
    figure.update_xaxes(title_text="fraction of pixels deleted", range=[0, 1], row=1, col=1)
    figure.update_xaxes(title_text="fraction of pixels inserted", range=[0, 1], row=1, col=2)
    figure.update_yaxes(title_text="target-class probability", rangemode="tozero", row=1, col=1)
    figure.update_layout(
        title=f"{title} – {report.protocol['baseline']} baseline, {report.protocol['steps']} steps",
        legend={"orientation": "h", "y": -0.25}, margin={"t": 80},
    )
    return figure


def _band(
    figure: go.Figure, x: np.ndarray, mean: np.ndarray, std: np.ndarray, name: str, col: int, show_legend: bool
) -> None:
    """A mean line with a filled mean ± std band."""
    upper = (mean + std).astype(np.float32)
    lower = np.clip(mean - std, 0, None).astype(np.float32)
    auc = float(area_under_curve(x, mean))
    figure.add_trace(
        go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([upper, lower[::-1]]), fill="toself",
                   fillcolor="rgba(127,127,127,0.25)", line={"width": 0}, hoverinfo="skip",
                   name="random order ± std", legendgroup="random", showlegend=show_legend),
        row=1, col=col,
    )
    figure.add_trace(
        go.Scatter(x=x, y=mean.astype(np.float32), mode="lines", name=f"{name}, AUC {auc:.3f}",
                   line={"color": _COLORS["random"], "dash": "dash"}, legendgroup="random", showlegend=show_legend),
        row=1, col=col,
    )


def randomization_cascade(reports: FaithfulnessReport | Sequence[FaithfulnessReport]) -> go.Figure:
    """Rank correlation of each method's map with its original as layers are re-initialized from the top.

    One line per report (mean over images; hover shows every image). A faithful map falls towards 0.
    """
    reports = [reports] if isinstance(reports, FaithfulnessReport) else list(reports)
    missing = [r.method for r in reports if not r.randomization]
    if not reports or missing:
        raise InputError(
            "randomization_cascade needs reports made with randomization=True"
            + (f"; these have none: {', '.join(missing)}." if missing else "; none were given.")
        )
    figure = go.Figure()
    for report in reports:
        names = [step.name for step in report.randomization]
        means = np.array([step.mean for step in report.randomization], dtype=np.float32)
        per_image = [", ".join(f"{c:.2f}" for c in step.correlations) for step in report.randomization]
        figure.add_trace(
            go.Scatter(x=names, y=means, mode="lines+markers", name=report.method, customdata=per_image,
                       hovertemplate="down to %{x}: mean %{y:.2f}<br>per image: %{customdata}"
                                     "<extra>%{fullData.name}</extra>")
        )
    figure.add_hline(y=1.0, line_dash="dot", line_color="#7f7f7f", annotation_text="same weights")
    figure.add_hline(y=RANDOMIZATION_THRESHOLD, line_dash="dash", line_color="#d62728",
                     annotation_text="below: the map changed")
    figure.update_layout(
        title=f"Model randomization on {reports[0].model_name}: does the map depend on the weights?",
        xaxis_title="layers re-initialized, from the output down to",
        yaxis_title="Spearman correlation with original map",
        yaxis_range=[-1.05, 1.05],
    )
    return figure


def agreement_heatmap(names: Sequence[str], matrix: np.ndarray) -> go.Figure:
    """The method-agreement matrix from :func:`explainer.method_agreement` (diverging colours, centred on 0)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (len(names), len(names)):
        raise InputError(f"matrix has shape {matrix.shape} but {len(names)} names were given; it must be square.")
    figure = go.Figure(
        go.Heatmap(z=matrix, x=list(names), y=list(names), zmin=-1, zmax=1, zmid=0, colorscale="RdBu",
                   texttemplate="%{z:.2f}", colorbar={"title": "Spearman"})
    )
    figure.update_layout(title="Agreement between methods (rank correlation of |maps|)", yaxis_autorange="reversed")
    return figure
