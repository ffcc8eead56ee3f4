"""explainer – open up neural networks: why they predict, how they learn, how little data they need.

Notebook use::

    import explainer
    model = explainer.load_model()                 # bundled ImageNet EfficientNet-Lite0, offline
    photos = explainer.sample_images()
    model.predict(photos["cat"], top_k=3)
"""

from explainer import compat
from explainer.attribution.estimate import CostEstimate, check_budget, estimate_cost
from explainer.attribution.explanation import Explanation, explain
from explainer.attribution.registry import METHODS, MethodSpec, Param, get_method, list_methods, register_method
from explainer.data.datasets import Dataset, load_dataset
from explainer.data.images import load_image, sample_images
from explainer.errors import DatasetError, ExplainerError, InputError, ModelLoadError
from explainer.evidence.evaluate import evaluate
from explainer.evidence.evaluation import Evaluation
from explainer.evidence.faithfulness import (
    FaithfulnessReport,
    MaskShare,
    check_faithfulness,
    mask_share,
    method_agreement,
)
from explainer.evidence.planted import planted_benchmark
from explainer.evidence.planted_reliance import Reliance, shortcut_reliance
from explainer.evidence.planted_report import PlantedReport
from explainer.hardware import describe_device, matmul_peak_gflops
from explainer.inside.activations import Activations, LayerActivation, layer_activations
from explainer.inside.concepts import Concepts, concepts
from explainer.inside.convolution import ConvStep, conv_step
from explainer.inside.embeddings import Embedding, embed_dataset
from explainer.inside.features import FeatureVisualization, TopActivating, top_activating, visualize_channel
from explainer.inside.intervention import ChannelImportance, Intervention, ablate, cam_channel_importance
from explainer.inside.patching import PatchResult, corrupt, patch
from explainer.inside.tcav import TcavResult, concept_sets, tcav
from explainer.learn.architectures import build_cnn, build_mlp, build_model
from explainer.learn.flops import FlopCount, count_flops
from explainer.learn.influence import DataAttribution, MislabelSearch, data_attribution, find_mislabeled
from explainer.learn.playground import PlaygroundConfig, PlaygroundFrame, PlaygroundRun, train_playground
from explainer.learn.sgd_step import LearningStep, learning_step
from explainer.learn.stepping import train_steps
from explainer.learn.sweep import estimate_sweep, open_sweep, sweep
from explainer.learn.sweep_grid import TrainingTask
from explainer.learn.sweep_results import SweepEstimate, SweepResults
from explainer.learn.training import fit
from explainer.learn.training_run import EpochStats, StepStats, TrainingRun
from explainer.models import BUNDLED_MODEL, Classifier, Prediction, list_model_sources, load_model
from explainer.models.anatomy import Anatomy, model_anatomy
from explainer.models.sources import weights_fingerprint
from explainer.report import ReportSection, build_report, save_report
from explainer.transfer import (
    STRATEGIES,
    Strategy,
    TransferResults,
    compare_transfer,
    open_results,
    register_strategy,
    resume_results,
)

__version__ = "0.3.0"

compat.install()


def __getattr__(name: str) -> object:
    """0.1's ``explainer.anatomy`` / ``explainer.activations``: deprecated aliases for one release."""
    if name in compat.RENAMED_FUNCTIONS:
        return compat.renamed_function(name)
    raise AttributeError(f"module 'explainer' has no attribute {name!r}")

__all__ = [
    "build_report",
    "ReportSection",
    "save_report",
    "Concepts", "concepts", "PatchResult", "corrupt", "patch", "TcavResult", "concept_sets", "tcav",
    "ablate",
    "Activations",
    "Anatomy",
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
    "data_attribution",
    "DataAttribution",
    "DatasetError",
    "describe_device",
    "embed_dataset",
    "Embedding",
    "EpochStats",
    "estimate_cost",
    "evaluate",
    "Evaluation",
    "check_budget",
    "explain",
    "get_method",
    "Param",
    "register_method",
    "ExplainerError",
    "Explanation",
    "FaithfulnessReport",
    "FeatureVisualization",
    "find_mislabeled",
    "fit",
    "FlopCount",
    "InputError",
    "Intervention",
    "LayerActivation",
    "layer_activations",
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
    "model_anatomy",
    "ModelLoadError",
    "MislabelSearch",
    "open_results",
    "planted_benchmark",
    "PlantedReport",
    "register_strategy",
    "Reliance",
    "resume_results",
    "PlaygroundConfig",
    "PlaygroundFrame",
    "PlaygroundRun",
    "Prediction",
    "sample_images",
    "shortcut_reliance",
    "StepStats",
    "sweep",
    "SweepEstimate",
    "SweepResults",
    "TrainingTask",
    "estimate_sweep",
    "open_sweep",
    "Strategy",
    "STRATEGIES",
    "top_activating",
    "TopActivating",
    "train_playground",
    "train_steps",
    "TrainingRun",
    "TransferResults",
    "visualize_channel",
    "weights_fingerprint",
]
