"""Figures for looking inside a network: anatomy, feature maps, channels, interventions, embeddings,
one convolution step. Pure functions of the result objects; arrays go to plotly as float32."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.errors import InputError
from explainer.inside.activations import Activations
from explainer.inside.convolution import ConvStep
from explainer.inside.embeddings import Embedding
from explainer.inside.features import FeatureVisualization, TopActivating
from explainer.inside.intervention import ChannelImportance, Intervention
from explainer.models.anatomy import Anatomy

_ROLE_COLORS = {"input": "#8c8c8c", "hidden": "#4c78a8", "output": "#f58518"}
_CLASS_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
                 "#9d755d", "#bab0ac")


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _rgb(pixels: Any) -> np.ndarray:
    """(C, H, W) pixels in [0, 1] → (H, W, 3) uint8 for go.Image (grey images repeated)."""
    array = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return (array[:3].transpose(1, 2, 0) * 255).round().astype(np.uint8)


def _params(count: int) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(int(count))


def anatomy_figure(anatomy: Anatomy) -> go.Figure:
    """Layered diagram, input at the top and output at the bottom: one box per layer, its width growing
    with the parameter count (square root), labelled with the output shape."""
    table = anatomy.table
    widths = np.sqrt(table["params"].to_numpy(dtype=np.float64))
    widths = 0.15 + 0.85 * widths / max(widths.max(), 1.0)
    labels = [f"{i}. {name}" for i, name in enumerate(table["layer"])]
    fig = go.Figure()
    for role, color in _ROLE_COLORS.items():
        mask = (table["role"] == role).to_numpy()
        if not mask.any():
            continue
        rows = table[mask]
        fig.add_trace(go.Bar(
            y=[labels[i] for i in np.flatnonzero(mask)],
            x=_f32(widths[mask]),
            base=_f32(-widths[mask] / 2),
            orientation="h",
            marker_color=color,
            name=f"{role} layer",
            text=["  ·  ".join(part for part in (t, s, f"{_params(p)} params") if part) for t, s, p in
                  zip(rows["type"], rows["output_shape"], rows["params"])],
            textposition="outside",
            cliponaxis=False,
            customdata=np.stack([rows["type"], rows["output_shape"], rows["params"]], axis=1),
            hovertemplate="%{y}<br>%{customdata[0]}<br>output %{customdata[1]}<br>%{customdata[2]:,} params"
            "<extra></extra>",
        ))
    fig.update_layout(
        title=f"{anatomy.model_name}: {anatomy.total_params:,} parameters in {len(anatomy.layers)} layers "
        f"(box width ∝ √params)",
        barmode="overlay",
        height=max(320, 28 * len(table) + 120),
        xaxis=dict(visible=False, range=[-0.6, 1.6]),
        yaxis=dict(autorange="reversed", categoryorder="array", categoryarray=labels, title=None),
        legend=dict(orientation="h", y=-0.05),
        margin=dict(l=10, r=10, t=50, b=30),
    )
    return fig


def _grid(count: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, count))
    return math.ceil(count / cols), cols


def feature_maps_figure(activations: Activations, layer: str, image: int = 0, channels: int = 16,
                        cols: int = 4) -> go.Figure:
    """The channels of one layer with the highest mean activation for ``image``, strongest first, as a
    heat-map grid; signed maps use a diverging scale centred on 0. Transformer tokens appear as their patch grid."""
    result = activations[layer]
    chosen = result.top_channels(channels, image=image)
    maps = result.maps[image, chosen].numpy().astype(np.float32)
    rows, cols = _grid(len(chosen), cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"ch {c}" for c in chosen],
                        horizontal_spacing=0.02, vertical_spacing=0.06)
    for i, values in enumerate(maps):
        fig.add_trace(go.Heatmap(z=values, coloraxis="coloraxis",
                                 hovertemplate=f"ch {chosen[i]}<br>row %{{y}}, col %{{x}}: %{{z:.3f}}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    signed = bool(maps.min() < 0)
    limit = float(np.abs(maps).max()) or 1.0
    coloraxis = dict(colorscale="RdBu_r", cmin=-limit, cmax=limit, cmid=0) if signed else \
        dict(colorscale="Viridis", cmin=0, cmax=limit)
    height, width = maps.shape[-2:]
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    for axis in range(2, len(chosen) + 1):
        fig.update_yaxes(scaleanchor=f"x{axis}", row=(axis - 1) // cols + 1, col=(axis - 1) % cols + 1)
    fig.update_layout(
        title=f"{layer} ({result.kind}, {height}×{width} map): {len(chosen)} strongest of {result.maps.shape[1]} "
        f"channels, image {image}",
        coloraxis=coloraxis,
        height=180 * rows + 90,
        margin=dict(l=10, r=10, t=70, b=10),
    )
    return fig


def layer_stats_figure(activations: Activations) -> go.Figure:
    """Mean ± std and sparsity (share of values ≤ 0) of every captured layer, in network order."""
    table = activations.stats_table()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean activation (± std)", "sparsity: share ≤ 0"))
    fig.add_trace(go.Bar(x=table["layer"], y=_f32(table["mean"]), error_y=dict(array=_f32(table["std"])),
                         name="mean", marker_color=_ROLE_COLORS["hidden"]), row=1, col=1)
    fig.add_trace(go.Bar(x=table["layer"], y=_f32(table["sparsity"]), name="sparsity",
                         marker_color=_ROLE_COLORS["output"]), row=1, col=2)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(title=f"{activations.model_name}: activation statistics per layer", showlegend=False, height=380)
    return fig


def top_activating_figure(top: TopActivating, cols: int = 3) -> go.Figure:
    """The images that excite the channel most, each with contours of where (its upsampled map)."""
    rows, cols = _grid(len(top.indices), cols)
    titles = [f"{name}<br>{top.score} {score:.2f}" for name, score in zip(top.names, top.scores)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.08)
    for i in range(len(top.indices)):
        row, col = i // cols + 1, i % cols + 1
        fig.add_trace(go.Image(z=_rgb(top.pixels[i]), hoverinfo="skip"), row=row, col=col)
        values = top.maps[i].numpy().astype(np.float32)
        peak = float(values.max())
        if peak > 0:
            fig.add_trace(go.Contour(
                z=values, showscale=False,
                contours=dict(start=0.5 * peak, end=peak, size=0.25 * peak, coloring="lines"),
                line=dict(width=2), colorscale=[[0, "#ffff00"], [1, "#ff0000"]], hoverinfo="skip",
            ), row=row, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        title=f"{top.layer} channel {top.channel}: top {len(top.indices)} of {len(top.all_scores)} images "
        "(contours at 50/75/100% of each map's peak)",
        height=260 * rows + 80, margin=dict(l=10, r=10, t=90, b=10),
    )
    return fig


def feature_visualization_figure(visualization: FeatureVisualization) -> go.Figure:
    """The optimized image beside its objective over the optimization steps; when it was checked, the channel's
    natural exemplars below it and the check's verdict in the title."""
    check = visualization.check
    shown = 0 if check is None else len(check.exemplars.indices)
    cols = max(shown, 2)
    left = max(1, cols // 2 - 1) if shown else 1
    specs: list[list[dict | None]] = [[{"colspan": left}, *[None] * (left - 1), {"colspan": cols - left},
                                       *[None] * (cols - left - 1)]]
    titles = ["optimized input", "channel activation during optimization"]
    if shown:
        specs.append([{} for _ in range(cols)])
        titles += [f"#{rank} ({score:.2f})" for rank, score in enumerate(check.exemplars.scores, start=1)]  # type: ignore[union-attr]
    fig = make_subplots(rows=len(specs), cols=cols, specs=specs, subplot_titles=titles,
                        row_heights=[0.62, 0.38] if shown else None, vertical_spacing=0.18)
    fig.add_trace(go.Image(z=_rgb(visualization.image)), row=1, col=1)
    steps = np.arange(1, len(visualization.history) + 1, dtype=np.float32)
    fig.add_trace(go.Scatter(x=steps, y=_f32(visualization.history), mode="lines", name="objective"), row=1, col=left + 1)
    references = [(visualization.photo_activation, "mean of photos", "dash"), (visualization.noise_activation, "noise", "dot")]
    if check is not None:
        references.append((check.exemplar_activation, "natural exemplars (mean)", "longdash"))
    for value, label, dash in references:
        fig.add_hline(y=value, line_dash=dash, annotation_text=label, row=1, col=left + 1)
    fig.update_xaxes(title="step", row=1, col=left + 1)
    for index in range(shown):
        fig.add_trace(go.Image(z=_rgb(check.exemplars.pixels[index])), row=2, col=index + 1)  # type: ignore[union-attr]
    for row, col in [(1, 1), *[(2, c + 1) for c in range(shown)]]:
        fig.update_xaxes(visible=False, row=row, col=col)
        fig.update_yaxes(visible=False, row=row, col=col)
    title = (f"{visualization.layer} channel {visualization.channel}: activation {visualization.activation:.2f} vs "
             f"photos {visualization.photo_activation:.2f}, noise {visualization.noise_activation:.2f} "
             f"({visualization.steps} steps, {visualization.size} px, {visualization.seconds:.1f} s on {visualization.device})")
    if check is not None:
        title += (f"<br>{'trustworthy' if check.trustworthy else 'NOT trustworthy'}: reaches {check.reach:.2f}× its "
                  f"natural exemplars (below); more like them than like other images by "
                  f"{check.agreement.difference.mean:.3f} (95 % CI {check.agreement.difference.low:.3f} to "
                  f"{check.agreement.difference.high:.3f}, {check.agreement.n} pairs)")
    fig.update_layout(title=title, showlegend=False, height=640 if shown else 420, margin=dict(t=110))
    return fig


def intervention_figure(intervention: Intervention, image: int = 0) -> go.Figure:
    """Probabilities of the top classes before and after the ablation, for one image."""
    rows = intervention.table[intervention.table["image"] == image]
    if rows.empty:
        raise InputError(f"image {image} out of range: the intervention covers {len(intervention.targets)} image(s).")
    what = "all channels" if intervention.channels is None else f"{len(intervention.channels)} channel(s)"
    fig = go.Figure()
    fig.add_trace(go.Bar(y=rows["label"], x=_f32(rows["before"]), orientation="h", name="before",
                         marker_color=_ROLE_COLORS["hidden"]))
    fig.add_trace(go.Bar(y=rows["label"], x=_f32(rows["after"]), orientation="h", name=f"after ({intervention.mode})",
                         marker_color=_ROLE_COLORS["output"]))
    fig.update_layout(
        title=f"{intervention.layer}: {intervention.mode}-ablating {what} – {intervention.target_labels[image]} "
        f"{intervention.prob_before[image]:.1%} → {intervention.prob_after[image]:.1%}",
        barmode="group", xaxis=dict(title="probability", range=[0, 1]), yaxis=dict(autorange="reversed"),
        height=max(300, 40 * len(rows) + 150),
    )
    return fig


def channel_importance_figure(importance: ChannelImportance, image: int | None = None, k: int = 20) -> go.Figure:
    """The ``k`` channels contributing most to the target logit (gradient × activation)."""
    values = importance.scores if image is None else importance.per_image[image]
    chosen = importance.top(k, image=image)
    fig = go.Figure(go.Bar(x=[f"ch {c}" for c in chosen], y=_f32(values[chosen]), marker_color=_ROLE_COLORS["hidden"]))
    scope = "averaged over images" if image is None else f"image {image}"
    fig.update_layout(title=f"{importance.layer}: top {len(chosen)} channels by gradient × activation ({scope})",
                      yaxis_title="contribution to target logit", height=360)
    return fig


def embedding_figure(embedding: Embedding) -> go.Figure:
    """The dataset in 2-D through the network's features and as raw pixels, coloured by class."""
    name = embedding.method.upper() if embedding.method == "pca" else "t-SNE"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"{embedding.layer} ({embedding.feature_dim}-d): k-NN {embedding.knn_accuracy:.1%}",
        f"raw pixels ({embedding.pixel_dim}-d): k-NN {embedding.pixel_knn_accuracy:.1%}",
    ))
    for index, label in enumerate(embedding.class_names):
        mask = embedding.labels == index
        color = _CLASS_COLORS[index % len(_CLASS_COLORS)]
        for col, coords in ((1, embedding.coords), (2, embedding.pixel_coords)):
            fig.add_trace(go.Scattergl(x=_f32(coords[mask, 0]), y=_f32(coords[mask, 1]), mode="markers",
                                       marker=dict(size=5, color=color), name=str(label), legendgroup=str(label),
                                       showlegend=col == 1), row=1, col=col)
    fig.update_layout(
        title=f"{embedding.model_name}: {name} of {len(embedding.labels)} {embedding.params.get('dataset', '')} "
        f"{embedding.split} images ({embedding.knn_k}-NN accuracy in 2-D, {embedding.folds}-fold CV)",
        height=460,
    )
    return fig


def conv_step_figure(step: ConvStep, max_channels: int = 3) -> go.Figure:
    """Input channel with the receptive field boxed, then patch, kernel and their product, with the
    numbers, for up to ``max_channels`` input channels; the title adds everything up."""
    shown = min(max_channels, len(step.in_channels))
    titles = []
    for i in range(shown):
        c = step.in_channels[i]
        total = float(step.products[i].sum())
        titles += [f"input ch {c}", f"patch (ch {c})", f"kernel (ch {c})", f"patch × kernel: Σ {total:.3f}"]
    fig = make_subplots(rows=shown, cols=4, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.08)
    kh, kw = step.kernel.shape[-2:]
    annotate = kh * kw <= 49
    for i in range(shown):
        fig.add_trace(go.Heatmap(z=step.input_map[i].numpy().astype(np.float32), colorscale="Greys_r", showscale=False),
                      row=i + 1, col=1)
        span_h, span_w = step.dilation[0] * (kh - 1), step.dilation[1] * (kw - 1)
        fig.add_shape(type="rect", x0=step.left - 0.5, x1=step.left + span_w + 0.5, y0=step.top - 0.5,
                      y1=step.top + span_h + 0.5, line=dict(color="#e45756", width=2), row=i + 1, col=1)
        for col, values in ((2, step.patch[i]), (3, step.kernel[i]), (4, step.products[i])):
            z = values.numpy().astype(np.float32)
            limit = float(np.abs(z).max()) or 1.0
            fig.add_trace(go.Heatmap(z=z, colorscale="RdBu_r", zmin=-limit, zmax=limit, zmid=0, showscale=False,
                                     texttemplate="%{z:.2f}" if annotate else None), row=i + 1, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    hidden = len(step.in_channels) - shown
    more = f" (+{hidden} more input channels)" if hidden else ""
    check = "✓ matches" if step.matches else "✗ differs from"
    fig.update_layout(
        title=f"{step.layer} out ch {step.out_channel} at ({step.row}, {step.col}): Σ patch×kernel = {step.total:.4f}"
        f"{more} + bias {step.bias:.4f} = {step.result:.4f} {check} the layer's output {step.actual:.4f}"
        f"<br><sup>stride {step.stride}, padding (l, r, t, b) {step.padding}, dilation {step.dilation}, "
        f"groups {step.groups}</sup>",
        height=220 * shown + 110, margin=dict(l=10, r=10, t=100, b=10),
    )
    return fig
