"""Bigram models: the counting model (closed form) and the neural bigram (a logits table).

Both see one character of context: x is int [B, 1] and the logits are [B, vocab].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..data import Vocab, build_context_dataset


# ----------------------------------------------------------------------------- counting bigram


@dataclasses.dataclass(frozen=True)
class CountConfig:
    vocab_size: int = 27
    smoothing: float = 1.0  # added to every count before normalising (Laplace/additive)

    block_size = 1  # one character of context; not a field: it cannot change


def count_matrix(X: np.ndarray, Y: np.ndarray, vocab_size: int) -> np.ndarray:
    """N[a, b] = how often b follows a. X int [N, 1], Y int [N] -> int64 [vocab, vocab]."""
    flat = X[:, -1].astype(np.int64) * vocab_size + Y
    return np.bincount(flat, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size)


def probabilities(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Row-normalised P[a, b] = p(b | a) from counts plus additive smoothing (float64)."""
    smoothed = counts + smoothing
    totals = smoothed.sum(axis=1, keepdims=True)
    return np.divide(smoothed, totals, out=np.zeros_like(smoothed, dtype=np.float64), where=totals > 0)


def fit(config: CountConfig, X: np.ndarray, Y: np.ndarray) -> dict:
    """The closed-form fit: params {"log_P": float32 [vocab, vocab]} from the training pairs."""
    P = probabilities(count_matrix(X, Y, config.vocab_size), config.smoothing)
    with np.errstate(divide="ignore"):
        return {"log_P": jnp.asarray(np.log(P), dtype=jnp.float32)}


def nll(P: np.ndarray, words: Sequence[str], vocab: Vocab) -> float:
    """Average negative log-likelihood of every bigram of the words (start and end included)."""
    X, Y = build_context_dataset(words, vocab, 1)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(P[X[:, 0], Y])))


def init(key: jax.Array, config: CountConfig) -> tuple[dict, dict]:
    """Uniform probabilities until `fit` counts; no randomness, no state."""
    del key
    return {"log_P": jnp.full((config.vocab_size, config.vocab_size), -np.log(config.vocab_size), jnp.float32)}, {}


def apply(params: dict, state: dict, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """x int [B, T] (the last character is the context) -> log-probabilities [B, vocab]."""
    del train
    return params["log_P"][x[:, -1]], state


# ----------------------------------------------------------------------------- neural bigram


@dataclasses.dataclass(frozen=True)
class NeuralConfig:
    vocab_size: int = 27
    reg: float = 0.0  # L2 penalty reg * mean(W**2), added to the training loss (lecture: 0.01)

    block_size = 1


def neural_init(key: jax.Array, config: NeuralConfig) -> tuple[dict, dict]:
    """W [vocab, vocab] ~ N(0, 1), as the lecture's torch.randn((27, 27))."""
    return {"W": jax.random.normal(key, (config.vocab_size, config.vocab_size))}, {}


def neural_apply(params: dict, state: dict, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict]:
    """x int [B, T] -> logits [B, vocab]: row x[:, -1] of W, which is one_hot(x) @ W."""
    del train
    return params["W"][x[:, -1]], state


def neural_penalty(params: dict, config: NeuralConfig) -> jax.Array:
    return config.reg * jnp.mean(jnp.square(params["W"]))
