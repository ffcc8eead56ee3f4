"""Results computed once per (model, what, inputs): cache keys and the one ``remember`` call.

Keys are explicit strings – content hashes of pixels and uploads (``hashlib``: Streamlit's own
hashing samples large arrays), parameters as canonical JSON – never tensors or modules.
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st
from model_choice import ModelEntry, lock_of

T = TypeVar("T")
#: Session-state key of results computed on this learner's own models (bounded, newest kept).
LEARNER_MEMO = "learner_memo"
LEARNER_MEMO_SIZE = 96


def content_key(data: bytes) -> str:
    """A cache key for uploaded bytes: their SHA-256 (never the bytes or a tensor themselves)."""
    return hashlib.sha256(data).hexdigest()


def input_key(image: Any) -> str:
    """Content hash of an input (decoded PIL pixels or a pixel tensor): the key for what is computed on it."""
    if hasattr(image, "detach"):  # a torch tensor
        return content_key(image.detach().cpu().numpy().tobytes() + str(tuple(image.shape)).encode())
    return content_key(image.tobytes() + f"{image.size}{image.mode}".encode())


def params_key(params: dict) -> str:
    """Parameters as canonical JSON (a cache key part)."""
    return json.dumps(params, sort_keys=True, default=str)


@st.cache_resource(max_entries=512, show_spinner=False)
def _shared_memo(model_key: str, what: str, key: str, _compute: Callable[[], Any]) -> Any:
    # cache_resource, not cache_data: results are read-only and cache_data would unpickle a copy of
    # every layer's activations on every rerun.
    return _compute()


def remember(entry: ModelEntry, what: str, key: str, compute: Callable[[], T], *, locked: bool = True) -> T:
    """``compute()`` once per (model, what, key): in a server cache for shared models, in the session otherwise.

    ``key`` must name every input of ``compute`` (image hashes, method, parameters as JSON). The
    model's lock is held while it runs when ``locked`` (library calls that run the model); figures
    built from results already computed pass ``locked=False`` so that they never wait for another
    learner's forward pass.
    """
    def run() -> T:
        if not locked:
            return compute()
        with lock_of(entry):
            return compute()

    if entry.shared:
        return _shared_memo(entry.key, what, key, run)
    memo: collections.OrderedDict = st.session_state.setdefault(LEARNER_MEMO, collections.OrderedDict())
    slot = (entry.key, what, key)
    if slot not in memo:
        memo[slot] = run()
        while len(memo) > LEARNER_MEMO_SIZE:
            memo.popitem(last=False)
    memo.move_to_end(slot)
    return memo[slot]
