"""Model layer: the `Classifier`, its sources (`load_model`), layer discovery and anatomy."""

from explainer.models.classifier import BUNDLED_MODEL, Classifier, ImageBatch, Prediction
from explainer.models.sources import list_model_sources, load_model

__all__ = ["BUNDLED_MODEL", "Classifier", "ImageBatch", "Prediction", "list_model_sources", "load_model"]
