"""makemore-jax: character-level language models from scratch, as pure JAX functions.

    from makemore_jax import train_model
    run = train_model("mlp-bn", steps=20_000)       # the short way in (lifecycle.py)
    run.evaluate(), run.sample(10)

    from makemore_jax import data, models, train    # the functional core it composes
    words = data.load_words(data.DEFAULT_DATA)
"""

from . import checkpoint, data, evaluate, losses, models, nn, sample, train
from .data import DataError, Vocab, build_context_dataset, build_sequence_dataset, load_words, split_words
from .lifecycle import train_model
from .losses import cross_entropy
from .models import REGISTRY, Model
from .run import Run, load_run
from .train import TrainConfig, TrainState, create_train_state, fit, lr_find, make_train_step

__all__ = [
    "checkpoint", "data", "evaluate", "losses", "models", "nn", "sample", "train",
    "DataError", "Vocab", "build_context_dataset", "build_sequence_dataset", "load_words",
    "split_words",
    "cross_entropy", "REGISTRY", "Model", "Run", "load_run", "train_model",
    "TrainConfig", "TrainState", "create_train_state", "fit", "lr_find", "make_train_step",
]
__version__ = "0.1.0"
