"""The host loop: one chunk runner for `train.fit` and the sweep, and its callbacks.

The device runs one compiled chunk (many fused train steps) per dispatch. The runner keeps
one chunk queued behind the running one while the host reads the one before, so the device
never waits for the host (double buffering); the host waits only where it pulls a chunk's
losses (`np.asarray`, a sync point). After each chunk it applies the divergence rule and
hands the chunk to the callbacks, which log, show progress or checkpoint.

A callback is any object with `on_chunk(state, step, losses, elapsed)` (and optionally
`close()`); returning `STOP` from it ends the run gracefully after that chunk (`StopWhen`
does so once an event is set, e.g. by a SIGTERM handler). The state a
callback sees is the good state at the end of the chunk; losses are float [n] for one run,
[R, n] for a sweep's R runs.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# A run diverged when a loss is NaN/inf, or more than this many times the reference: the
# first loss of the run (or ln(vocab_size), a uniform guess, if larger). Lecture 2's unit
# init starts near 27 and never comes back from 10x that; a healthy run never gets there
# (its minibatch losses stay within a few nats of the mean).
DIVERGENCE_FACTOR = 10.0
STOP = "stop"  # what a callback returns to end the run after this chunk


class Divergence:
    """The divergence rule, one reference per run (row), set from each run's first loss."""

    def __init__(self, vocab_size: int, factor: float = DIVERGENCE_FACTOR):
        self.floor = math.log(vocab_size)
        self.factor = factor
        self.reference: np.ndarray | None = None  # float [R]

    def first_bad(self, losses: np.ndarray) -> np.ndarray:
        """losses float [R, n] -> int [R]: each row's first diverged index in the chunk, or -1."""
        if self.reference is None:
            first = losses[:, 0]
            self.reference = np.maximum(np.where(np.isfinite(first), first, 0.0), self.floor)
        bad = ~np.isfinite(losses) | (losses > self.factor * self.reference[:, None])
        return np.where(bad.any(axis=1), np.argmax(bad, axis=1), -1)


@dataclasses.dataclass
class Result:
    state: Any  # the last good state
    steps: int  # steps run (from `start`)
    seconds: float  # wall time of the loop, compiles included
    compile_seconds: float
    last_losses: np.ndarray | None  # the last good chunk's losses
    stopped: bool  # ended early by a callback's STOP


def run_chunks(compile_chunk: Callable[[int], Callable], state, *, start: int, total: int, chunk_size: int,
               divergence: Divergence, on_diverged: Callable, callbacks: Sequence = (),
               host: Callable = np.asarray) -> Result:
    """Run chunks from step `start` to `total`.

    Args:
        compile_chunk: n -> a compiled chunk(state) -> (state, outputs) of n steps (called
            once per distinct n, timed as compile time).
        host: the chunk's outputs -> its losses on the host, float [n] or [R, n] (the sync point).
        on_diverged: (first step, bad [R] from Divergence.first_bad, state before the chunk,
            losses [R, n]) -> None; it may raise to end the run (train) or note the runs (sweep).
        callbacks: objects with on_chunk(state, step, losses, elapsed) after each good chunk;
            one that returns STOP ends the run after that chunk (the chunk queued behind it is dropped).
    """
    chunks: dict[int, Callable] = {}
    compile_seconds, last, done, stopped = 0.0, None, start, False
    pending: deque = deque()  # (first step, n, state before, state after, outputs)
    next_state, next_step = state, start
    t0 = time.perf_counter()
    try:
        while (next_step < total and not stopped) or pending:
            if next_step < total and len(pending) < 2 and not stopped:
                n = min(chunk_size, total - next_step)
                if n not in chunks:
                    tc0 = time.perf_counter()
                    chunks[n] = compile_chunk(n)
                    compile_seconds += time.perf_counter() - tc0
                after, outputs = chunks[n](next_state)  # returns at once: the device works on
                pending.append((next_step, n, next_state, after, outputs))
                next_state, next_step = after, next_step + n
                continue
            first, n, before, after, outputs = pending.popleft()
            if stopped:
                continue  # queued past a stop request: dropped
            losses = host(outputs)  # the host waits for this chunk here
            rows = losses if losses.ndim == 2 else losses[None]
            bad = divergence.first_bad(rows)
            if (bad >= 0).any():
                on_diverged(first, bad, before, rows)
            state, last, done = after, losses, first + n
            elapsed = time.perf_counter() - t0
            asked = [callback.on_chunk(state, done, losses, elapsed) for callback in callbacks]
            stopped = STOP in asked
    finally:
        for callback in callbacks:
            getattr(callback, "close", lambda: None)()
    return Result(state, done - start, time.perf_counter() - t0, compile_seconds, last, stopped)


# ----------------------------------------------------------------------------- callbacks


class Progress:
    """A tqdm bar on a terminal; elsewhere a plain line at every tenth of the run.

    Args:
        line: (step, losses, elapsed) -> the plain line's text.
        bar: a bar on a terminal (False: plain lines everywhere).
    """

    def __init__(self, total: int, start: int, *, quiet: bool, line: Callable, bar: bool = True):
        from tqdm import tqdm  # not tqdm.auto: it warns in a Jupyter kernel without ipywidgets
        self.total, self.start, self.line = total, start, line
        self.bar = tqdm(total=total, initial=start, disable=quiet or not bar or not sys.stderr.isatty(),
                        unit="step", dynamic_ncols=True)
        self.every = 0 if quiet or not self.bar.disable else max(total // 10, 1)
        self.last = start

    def on_chunk(self, state, step: int, losses: np.ndarray, elapsed: float):
        self.bar.update(step - self.last)
        self.bar.set_postfix(loss=f"{losses.mean():.4f}")
        if self.every and (step // self.every > self.last // self.every or step == self.total):
            print(self.line(step, losses, elapsed), file=sys.stderr, flush=True)
        self.last = step

    def close(self):
        self.bar.close()


class StopWhen:
    """Returns STOP after the first chunk that ends once `event` (a threading.Event) is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def on_chunk(self, state, step: int, losses, elapsed):
        return STOP if self.event.is_set() else None


class Call:
    """Calls fn(state) after every chunk."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def on_chunk(self, state, step: int, losses, elapsed):
        self.fn(state)


class JsonLog:
    """One JSON line per chunk: step, loss (chunk mean), last loss, lr and time, appended to `path`.

    Args:
        schedule: step -> learning rate (the one of the chunk's last step is logged).
    """

    def __init__(self, path: str, schedule: Callable):
        from .checkpoint import dumps_json, write_error
        self.dumps, self.schedule, self.path, self.error = dumps_json, schedule, path, write_error
        try:
            self.file = open(path, "a", encoding="utf-8")
        except OSError as e:
            raise write_error(path, e) from None

    def on_chunk(self, state, step: int, losses: np.ndarray, elapsed: float):
        record = {"step": step, "loss": float(losses.mean()), "last_loss": float(losses[-1]),
                  "lr": float(self.schedule(step - 1)), "time": round(elapsed, 4)}
        try:
            self.file.write(self.dumps(record) + "\n")
            self.file.flush()
        except OSError as e:  # a full disk: named by its file (a torn last line is dropped on --resume)
            raise self.error(self.path, e) from None

    def close(self):
        try:
            self.file.close()
        except OSError:
            pass  # the failed write above was reported already
