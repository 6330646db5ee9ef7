"""Exact loss over a whole split: every example once, in fixed-size jitted batches; one sequence's logits."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import numpy as np

from .data import IGNORE
from .losses import cross_entropy_sum


@functools.partial(jax.jit, static_argnames="apply")
def _batch_loss(apply: Callable, params, state, x: jax.Array, y: jax.Array):
    """(summed nll, counted targets) of one batch in eval mode."""
    logits, _ = apply(params, state, x, train=False)
    return cross_entropy_sum(logits, y)


@functools.partial(jax.jit, static_argnames="apply")
def sequence_logits(apply: Callable, params, state, ids: jax.Array) -> jax.Array:
    """A sequence model's eval-mode logits at every position of one sequence: ids int [T] -> float32 [T, vocab]."""
    logits, _ = apply(params, state, ids[None], train=False)
    return logits[0].astype(np.float32)


def split_loss(apply: Callable, params, state, X: np.ndarray, Y: np.ndarray, *, batch_size: int = 8192) -> float:
    """Mean cross-entropy in nats over every target of the split (eval mode, state unchanged).

    Every batch has the same shape (the last is padded with ignored targets, at most one row
    per batch), so one compiled program serves the split; the host waits once, at the end.

    Args:
        apply: the model's apply function.
        X: int [N, ...] inputs; Y: int [N] or [N, T] targets (-1 ignored).
    Returns:
        mean negative log-likelihood per counted target (nats).
    """
    batch_size = rows_per_batch(len(X), batch_size)
    pad = -len(X) % batch_size  # padded rows get target -1, which the loss ignores
    X = np.concatenate([X, np.zeros((pad, *X.shape[1:]), X.dtype)])
    Y = np.concatenate([Y, np.full((pad, *Y.shape[1:]), IGNORE, Y.dtype)])
    sums = [_batch_loss(apply, params, state, X[i:i + batch_size], Y[i:i + batch_size])
            for i in range(0, len(X), batch_size)]
    total, count = (sum(float(v) for v in values) for values in zip(*jax.device_get(sums)))
    return total / max(count, 1)


def rows_per_batch(n: int, batch_size: int) -> int:
    """split_loss's rows per batch for n examples: as many batches as batch_size makes, each as small as it can be."""
    batch_size = max(1, min(batch_size, n))
    return -(-n // -(-n // batch_size))


def compile_split_loss(apply: Callable, params, state, X: np.ndarray, Y: np.ndarray, *, batch_size: int = 8192) -> None:
    """Compile the one batch program `split_loss` runs on these arguments, and run nothing.

    JAX keeps the program, so the split_loss that follows starts at once. Only shapes and
    dtypes are read (params, state: arrays or jax.ShapeDtypeStruct trees): from a thread, this
    compile overlaps another one (the training's), on a core that compile leaves idle.
    """
    rows = rows_per_batch(len(X), batch_size)
    batch = lambda a: jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype)  # noqa: E731
    _batch_loss.lower(apply, params, state, batch(X), batch(Y)).compile()


def kind_batches(model, config, arrays) -> tuple[np.ndarray, np.ndarray, int]:
    """A split's arrays as the model's data kind evaluates them: (X, Y, batch_size) (eval_arrays, eval_batch)."""
    kind = model.kind
    X, Y = kind.eval_arrays(arrays, config.block_size)
    return X, Y, kind.eval_batch(config.block_size, config.vocab_size)


def kind_loss(model, config, params, state, arrays, **kwargs) -> float:
    """`split_loss` of a split's arrays as the model's data kind evaluates them (kind_batches)."""
    X, Y, batch_size = kind_batches(model, config, arrays)
    return split_loss(model.bind(config), params, state, X, Y, batch_size=batch_size, **kwargs)


def compile_kind_loss(model, config, params, state, arrays) -> None:
    """`compile_split_loss` of what `kind_loss` with these arguments runs."""
    X, Y, batch_size = kind_batches(model, config, arrays)
    compile_split_loss(model.bind(config), params, state, X, Y, batch_size=batch_size)


def bits(nats: float) -> float:
    """Nats to bits per character."""
    return nats / math.log(2)


def bits_per_byte(nats: float, targets: int, n_bytes: int) -> float:
    """Mean nats per token over `targets` tokens standing for `n_bytes` UTF-8 bytes, as bits per byte:
    total nats / (ln 2 x bytes), comparable across tokenizers (nanochat's bpb)."""
    return nats * targets / (math.log(2) * n_bytes) if n_bytes else math.nan
