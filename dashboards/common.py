"""One import for pages: the dashboard's shared helpers, each from the module that holds its one job.

* ``model_choice`` – the app-wide model picker, shared models (warmed up in the background) and locks,
  the learner's own models;
* ``memo`` – cache keys (content hashes, canonical JSON) and ``remember`` (once per model and input);
* ``inputs`` – sample photos, datasets, uploads, inputs that fit the picked model;
* ``feedback`` – library errors as red boxes;
* ``url_state`` – settings in the page URL;
* ``reports`` – views kept for the Report page and offered as HTML;
* ``training_queue`` – trainings take turns across the server.

No ML in any of them: every number shown comes from the ``explainer`` library. None imports torch
or ``explainer`` at module level, so a page that needs neither paints at once.
"""

from __future__ import annotations

from feedback import shows_errors
from inputs import TEST_CHOICES, UPLOAD_CHOICE, Picked, dataset, pick_image, pick_input, sample_photos, upload_image
from memo import LEARNER_MEMO, LEARNER_MEMO_SIZE, content_key, input_key, params_key, remember
from model_choice import (
    BUNDLED_KEY,
    KNOWN_TIMM,
    KNOWN_TORCHVISION,
    LEARNER_MODELS,
    MODEL_CHOICE,
    MODEL_REQUEST,
    PHOTOS,
    ModelEntry,
    add_learner_model,
    bundled_classifier,
    cached_hub_models,
    classifier_of,
    learner_models,
    lock_of,
    model_entries,
    model_lock,
    model_picker,
    picked_model,
    request_model,
    shared_classifier,
    start_warm_up,
)
from reports import REPORT_KEY, keep_report, offer_report, report_sections, shipped, slug
from url_state import url_choice, url_option, url_value, write_url

__all__ = [
    "BUNDLED_KEY", "KNOWN_TIMM", "KNOWN_TORCHVISION", "LEARNER_MEMO", "LEARNER_MEMO_SIZE", "LEARNER_MODELS",
    "MODEL_CHOICE", "MODEL_REQUEST", "PHOTOS", "REPORT_KEY", "TEST_CHOICES", "UPLOAD_CHOICE", "ModelEntry", "Picked",
    "add_learner_model", "bundled_classifier", "cached_hub_models", "classifier_of", "content_key", "dataset",
    "input_key", "keep_report", "learner_models", "lock_of", "model_entries", "model_lock", "model_picker",
    "offer_report", "params_key", "pick_image", "pick_input", "picked_model", "remember", "report_sections",
    "request_model", "sample_photos", "shared_classifier", "shipped", "shows_errors", "slug", "start_warm_up",
    "upload_image", "url_choice", "url_option", "url_value", "write_url",
]
