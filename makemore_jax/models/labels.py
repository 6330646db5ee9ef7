"""What a model's parameters are to the optimiser: which leaves are weight matrices.

The optimiser (optim.py) never reads a model's key names. A model that knows more about
its parameters than their shapes declares a `ParamLabels` (an ability of its registry
entry, models/__init__.py); every other model gets `GENERIC`, which reads shapes only.

    labels(params) -> tree of MATRIX / OTHER
        MATRIX: the hidden weight matrices (x @ W inside the network), Muon's group under
        optimizer="muon"; OTHER: every other leaf (embeddings, the head, norms, biases),
        AdamW's. The tree is passed to optax.partition.
    decayed(params) -> tree of bool
        the leaves weight decay shrinks under decay="matrices": weights and embeddings,
        not biases or norm gains (nanoGPT's two AdamW parameter groups).
    dimensions(tree) -> tree of optax.contrib.MuonDimensionNumbers
        how each MATRIX leaf reads as matrices: x @ W contracts `reduction_axis` with the
        `output_axis`; other axes are batch axes (matrices orthogonalised separately).
        `tree` is the params or the updates, with optax.MaskedNode where a leaf is OTHER.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

MATRIX, OTHER = "matrix", "other"


class ParamLabels(NamedTuple):
    """The optimiser's view of a model's parameters (see the module docstring)."""

    labels: Callable
    decayed: Callable
    dimensions: Callable


def no_matrices(params) -> dict:
    """Every leaf OTHER: a model with no hidden matrices for Muon (AdamW alone under muon)."""
    return jax.tree.map(lambda _: OTHER, params)


def weights_and_embeddings(params) -> dict:
    """True for the leaves with ndim >= 2 (weights and embeddings), False for vectors (biases, gains)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def one_matrix_each(tree) -> dict:
    """Each leaf [in, out...] one matrix: axis 0 contracted with all the others."""
    return jax.tree.map(lambda p: optax.contrib.MuonDimensionNumbers(reduction_axis=0,
                                                                     output_axis=tuple(range(1, p.ndim))), tree)


GENERIC = ParamLabels(no_matrices, weights_and_embeddings, one_matrix_each)
