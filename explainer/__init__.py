"""explainer – open up neural networks: why they predict, how they learn, how little data they need.

Notebook use::

    import explainer
    model = explainer.load_model()                 # bundled ImageNet EfficientNet-Lite0, offline
    photos = explainer.sample_images()
    model.predict(photos["cat"], top_k=3)
"""

from explainer.data.datasets import Dataset, load_dataset
from explainer.data.images import load_image, sample_images
from explainer.errors import DatasetError, ExplainerError, InputError, ModelLoadError
from explainer.evidence.faithfulness import (
    FaithfulnessReport,
    MaskShare,
    check_faithfulness,
    mask_share,
    method_agreement,
)
from explainer.explain.attribution import METHODS, Explanation, MethodSpec, explain, list_methods
from explainer.explain.estimate import CostEstimate, estimate_cost
from explainer.hardware import describe_device, matmul_peak_gflops
from explainer.inside.activations import Activations, LayerActivation, activations
from explainer.inside.convolution import ConvStep, conv_step
from explainer.inside.embeddings import Embedding, embed_dataset
from explainer.inside.features import FeatureVisualization, TopActivating, top_activating, visualize_channel
from explainer.inside.intervention import ChannelImportance, Intervention, ablate, cam_channel_importance
from explainer.learn.architectures import build_cnn, build_mlp, build_model
from explainer.learn.flops import FlopCount, count_flops
from explainer.learn.playground import PlaygroundConfig, PlaygroundRun, train_playground
from explainer.learn.training import EpochStats, LearningStep, StepStats, TrainingRun, fit, learning_step
from explainer.models import BUNDLED_MODEL, Classifier, Prediction, list_model_sources, load_model
from explainer.models.anatomy import Anatomy, anatomy
from explainer.transfer.experiment import STRATEGIES, TransferResults, compare_transfer, open_results

__version__ = "0.1.0"

__all__ = [
    "ablate",
    "Activations",
    "activations",
    "Anatomy",
    "anatomy",
    "build_cnn",
    "build_mlp",
    "build_model",
    "BUNDLED_MODEL",
    "cam_channel_importance",
    "ChannelImportance",
    "check_faithfulness",
    "Classifier",
    "compare_transfer",
    "conv_step",
    "ConvStep",
    "CostEstimate",
    "count_flops",
    "Dataset",
    "DatasetError",
    "describe_device",
    "embed_dataset",
    "Embedding",
    "EpochStats",
    "estimate_cost",
    "explain",
    "ExplainerError",
    "Explanation",
    "FaithfulnessReport",
    "FeatureVisualization",
    "fit",
    "FlopCount",
    "InputError",
    "Intervention",
    "LayerActivation",
    "learning_step",
    "LearningStep",
    "list_methods",
    "list_model_sources",
    "load_dataset",
    "load_image",
    "load_model",
    "mask_share",
    "MaskShare",
    "matmul_peak_gflops",
    "method_agreement",
    "METHODS",
    "MethodSpec",
    "ModelLoadError",
    "open_results",
    "PlaygroundConfig",
    "PlaygroundRun",
    "Prediction",
    "sample_images",
    "StepStats",
    "STRATEGIES",
    "top_activating",
    "TopActivating",
    "train_playground",
    "TrainingRun",
    "TransferResults",
    "visualize_channel",
]
