"""find_cam_layer / describe_layer: sensible CAM layers for CNNs and ViTs, token grids, clear errors."""

from __future__ import annotations

import pytest
import torch

from explainer import InputError, load_model
from explainer.models.layers import describe_layer, feature_layers, find_cam_layer


@pytest.mark.parametrize(
    ("source", "layer", "kind", "grid", "prefix"),
    [
        ("resnet18", "layer4", "spatial", (7, 7), 0),
        ("torchvision:resnet18", "layer4", "spatial", (7, 7), 0),
        ("vit_tiny_patch16_224", "blocks.11.norm1", "tokens", (14, 14), 1),
        ("deit_tiny_distilled_patch16_224", "blocks.11.norm1", "tokens", (14, 14), 2),
    ],
)
def test_cam_layer_per_family(source: str, layer: str, kind: str, grid: tuple, prefix: int) -> None:
    info = find_cam_layer(load_model(source, pretrained=False, device="cpu"))
    assert (info.name, info.kind, info.grid, info.prefix_tokens) == (layer, kind, grid, prefix)


def test_bundled_model_uses_its_last_spatial_layer(bundled_classifier) -> None:
    info = find_cam_layer(bundled_classifier)
    assert (info.name, info.channels, info.grid) == ("bn2", 1280, (7, 7))
    assert list(feature_layers(bundled_classifier))[0] == "conv_stem"


def test_token_grid_drops_prefix_tokens() -> None:
    info = find_cam_layer(load_model("vit_tiny_patch16_224", pretrained=False, device="cpu"))
    tokens = torch.arange(2 * 197 * 192, dtype=torch.float32).reshape(2, 197, 192)
    grid = info.to_grid(tokens)
    assert grid.shape == (2, 192, 14, 14)
    # patch token 0 (right after the class token) is the top-left cell; patch 15 is row 1, column 1
    assert torch.equal(grid[1, :, 0, 0], tokens[1, 1])
    assert torch.equal(grid[0, :, 1, 1], tokens[0, 1 + 15])


def test_describe_layer_errors(bundled_classifier) -> None:
    with pytest.raises(InputError, match="Unknown layer 'blocks.9'"):
        describe_layer(bundled_classifier, "blocks.9")
    with pytest.raises(InputError, match="does not output a spatial map.*bn2"):
        describe_layer(bundled_classifier, "classifier")
