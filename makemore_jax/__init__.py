"""makemore-jax: character-level language models from scratch, as pure JAX functions.

    from makemore_jax import data, models, train
    words = data.load_words(data.DEFAULT_DATA)
"""

from . import checkpoint, data, evaluate, losses, models, nn, sample, train
from .data import (DataError, Vocab, build_context_dataset, build_dataset, build_sequence_dataset, load_words,
                   split_words)
from .losses import cross_entropy
from .models import REGISTRY, Model
from .train import TrainConfig, TrainState, create_train_state, fit, lr_find, make_train_step

__all__ = [
    "checkpoint", "data", "evaluate", "losses", "models", "nn", "sample", "train",
    "DataError", "Vocab", "build_context_dataset", "build_dataset", "build_sequence_dataset", "load_words",
    "split_words",
    "cross_entropy", "REGISTRY", "Model",
    "TrainConfig", "TrainState", "create_train_state", "fit", "lr_find", "make_train_step",
]
__version__ = "0.1.0"
