"""explainer – open up neural networks: why they predict, how they learn, how little data they need.

Notebook use::

    import explainer
    model = explainer.load_model()                 # bundled ImageNet EfficientNet-Lite0, offline
    photos = explainer.sample_images()
    model.predict(photos["cat"], top_k=3)
"""

from .activations import Activations, LayerActivation, activations
from .anatomy import Anatomy, anatomy
from .architectures import build_cnn, build_mlp, build_model
from .attribution import METHODS, Explanation, MethodSpec, explain, list_methods
from .convolution import ConvStep, conv_step
from .datasets import Dataset, load_dataset
from .embeddings import Embedding, embed_dataset
from .errors import DatasetError, ExplainerError, InputError, ModelLoadError
from .estimate import CostEstimate, estimate_cost
from .faithfulness import FaithfulnessReport, MaskShare, check_faithfulness, mask_share, method_agreement
from .features import FeatureVisualization, TopActivating, top_activating, visualize_channel
from .flops import FlopCount, count_flops
from .hardware import describe_device, matmul_peak_gflops
from .images import load_image, sample_images
from .intervention import ChannelImportance, Intervention, ablate, cam_channel_importance
from .models import BUNDLED_MODEL, Classifier, Prediction, list_model_sources, load_model
from .playground import PlaygroundConfig, PlaygroundRun, train_playground
from .training import EpochStats, LearningStep, StepStats, TrainingRun, fit, learning_step
from .transfer import STRATEGIES, TransferResults, compare_transfer, open_results

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
