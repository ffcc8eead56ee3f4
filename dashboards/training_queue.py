"""Training in the dashboard takes turns: a server-wide queue, one training at a time per learner.

A training run is mostly one long chain of small torch ops under Python's GIL; eight at once on a
few cores make every learner's charts wait. So runs queue for :data:`SLOTS` slots (first come,
first served), each learner may have one run queued or running, and a waiting learner sees their
place in the queue. Torch's intra-op threads are bounded for the whole server process
(:func:`bound_threads`, called by the background warm-up at server start and before each training), so
neither a training nor one learner's forward passes take every core from the others: sessions run in
threads of one process, and eight threads each asking for every core make every one of them wait.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator

import streamlit as st

#: Trainings running at once in this server: half the cores, at least one.
SLOTS = max(1, (os.cpu_count() or 2) // 2)
#: Torch intra-op threads of one server process (each training and each forward pass).
THREADS = max(1, (os.cpu_count() or 2) // 2)
#: Session-state key marking that this learner has a training queued or running.
BUSY_KEY = "training_busy"


class TrainingQueue:
    """First-come-first-served slots for training runs, shared by every session of the server."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._tickets = itertools.count()
        self._waiting: list[int] = []
        self._running = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def slot(self, waiting: Callable[[int], None]) -> Iterator[None]:
        """Hold a slot for the ``with`` block; ``waiting(position)`` is called (about every 0.5 s) until then."""
        with self._changed:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
        try:
            while True:
                with self._changed:
                    position = self._waiting.index(ticket)
                    if position == 0 and self._running < self.slots:
                        self._waiting.pop(0)
                        self._running += 1
                        self._changed.notify_all()
                        break
                    ahead = position + self._running
                waiting(ahead)  # a Streamlit call: the learner may leave the page here
                with self._changed:
                    self._changed.wait(timeout=0.5)
        except BaseException:
            with self._changed:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._changed.notify_all()
            raise
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()


@st.cache_resource
def training_queue() -> TrainingQueue:
    """The server's one training queue."""
    return TrainingQueue(SLOTS)


def bound_threads() -> None:
    """At most :data:`THREADS` torch intra-op threads in this server process (a no-op when already fewer)."""
    import torch

    if torch.get_num_threads() > THREADS:
        torch.set_num_threads(THREADS)


@contextlib.contextmanager
def training_turn(status: st.delta_generator.DeltaGenerator) -> Iterator[None]:
    """Wait for this learner's turn to train (their queue position in ``status``), then hold it.

    A learner with a training already queued or running gets an info box instead of a second one.
    """
    if st.session_state.get(BUSY_KEY):
        st.info("Your previous training is still queued or running – one at a time per learner.")
        st.stop()
    st.session_state[BUSY_KEY] = True
    try:
        bound_threads()

        def waiting(ahead: int) -> None:
            status.info(f"The machine is busy: {ahead} training run(s) ahead of yours. Yours starts "
                        "as soon as one finishes.", icon=":material/hourglass_top:")

        with training_queue().slot(waiting):
            status.empty()
            yield
    finally:
        st.session_state[BUSY_KEY] = False
