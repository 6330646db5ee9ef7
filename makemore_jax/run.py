"""The short way in: train a named model in one call, get back a Run, load it again later.

    from makemore_jax import train_model, load_run
    run = train_model("mlp-bn", steps=20_000, lr_decay_step=10_000)
    run.evaluate()                  # {"train": 2.07, "dev": 2.11, "test": 2.11} (nats)
    run.sample(10)                  # ten names
    run.save("out/bn"); run = load_run("out/bn")

A Run composes the functional core without hiding it: it holds the plain pieces (the
`Model`, its config, the `TrainConfig`, the `Vocab`, the numpy splits and the `TrainState`),
ready to pass to `train.fit`, `evaluate.split_loss`, `sample.sample_ids` or `checkpoint`
directly. The command line's `train` is a thin layer over `train_model`.

Errors name settings as `name=value` (the command line shows them as `--name value`:
settings.UsageError). The checks and the run-building path live in runbuild.py.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import checkpoint, models
from .checkpoint import CheckpointError
from .data import DataError, Vocab, read_data
from .models import Model
from .optim import TrainConfig
from .settings import SettingError, UsageError  # noqa: F401 (run's public names)
from .train import TrainState

SPLITS = ("train", "dev", "test")
METRICS = "metrics.jsonl"
SAVE_EVERY = 10_000  # steps between checkpoints while training (at least one chunk), and at the end
DEFAULT_MAX_LEN = 32  # sample length when a checkpoint does not record its longest word
SAMPLE_BATCH = 10_000  # words drawn per call when sampling (Run.sample_batches)


class Stopped(RuntimeError):
    """Training stopped without a result (exit status `status`, 1); `run` holds the last good state."""

    status = 1

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


class Terminated(Stopped):
    """Training was asked to stop (SIGTERM) and did at a chunk's end; its state is saved (exit status 143)."""

    status = 128 + 15


# ----------------------------------------------------------------------------- the data


def build_splits(model: Model, config, words, vocab: Vocab) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The data kind's split (words: the lectures' 80/10/10, seed 42; text: 90/10 by position),
    each part as the model's (X, Y) numpy arrays, by the kind's split names.

    The one place a run builds its datasets.
    """
    kind = model.kind
    parts = dict(zip(kind.splits, kind.split(words)))
    return {name: kind.build(w, vocab, config.block_size) for name, w in parts.items()}


def checkpoint_metadata(model: Model, config, tc: TrainConfig, vocab: Vocab, info: dict) -> dict:
    """What a checkpoint records besides the arrays (the one place it is built)."""
    return {"model": model.name, "dataset": model.dataset, "config": dataclasses.asdict(config),
            "train": dataclasses.asdict(tc), "vocab": list(vocab.chars), **info}


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Run:
    """A model, its data and its TrainState, with what a checkpoint records about them.

    `info` holds the rest of the checkpoint's metadata: "data" (the file's path or None),
    "data_sha256", "seed" and the kind's own ("max_word_len"; text: "characters"), and
    "results" once evaluated by train_model. `words` holds the data kind's items: the
    words, or (kind "text") the whole text as one string.
    `data_sha256` is the hash of the data loaded now (None if none could be).
    """

    model: Model
    config: Any
    train_config: TrainConfig
    vocab: Vocab
    words: list[str] | str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    state: TrainState
    summary: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    data_sha256: str | None = None

    @property
    def train_words(self) -> list[str]:
        return self.model.kind.split(self.words)[0] if self.words else []

    def evaluate(self, *, train: bool = True) -> dict[str, float]:
        """Exact mean loss (nats) of every non-empty split: {"train": ..., "dev": ..., "test": ...} (text: "val");
        train=False leaves the training split out."""
        from .evaluate import kind_loss
        ts = self.state
        return {name: kind_loss(self.model, self.config, ts.params, ts.model_state, arrays)
                for name, arrays in self.splits.items() if len(arrays[0]) and (train or name != "train")}

    def sample(self, n: int = 10, *, seed: int = 0, temperature: float = 1.0, top_k: int | None = None,
               max_len: int | None = None) -> list[str]:
        """n generated words ("" where the model ended a word at once): `sample_batches`, joined."""
        return [name for batch in self.sample_batches(n, seed=seed, temperature=temperature, top_k=top_k,
                                                      max_len=max_len) for name in batch]

    def sample_batches(self, n: int, *, seed: int = 0, temperature: float = 1.0, top_k: int | None = None,
                       max_len: int | None = None, batch_size: int = SAMPLE_BATCH) -> Iterator[list[str]]:
        """n generated words in lists of batch_size (the last shorter), drawn one list at a time.

        Batch b uses the key fold_in(key(seed), b): the words depend on the seed and the batch
        size only, and memory stays bounded whatever n. max_len: twice the longest word by default.
        """
        import jax
        from .sample import decode, sample_ids
        if self.model.kind.sample == "text":
            raise UsageError(f"{self.model.name} continues running text: use run.generate(prompt=..., length=...)")
        self._check_draws(temperature, top_k)
        max_len = max_len or 2 * self.info.get("max_word_len", DEFAULT_MAX_LEN // 2)
        if self.model.dataset == "sequence":  # a sequence model has no positions past its block
            max_len = min(max_len, self.config.block_size)
        for b, start in enumerate(range(0, n, batch_size)):
            ids = sample_ids(self.model, self.state.params, self.state.model_state,
                             jax.random.fold_in(jax.random.key(seed), b), n=min(batch_size, n - start),
                             block_size=self.config.block_size, max_len=max_len, temperature=temperature,
                             top_k=top_k, config=self.config)
            yield decode(jax.device_get(ids), self.vocab)

    def generate(self, prompt: str = "\n", length: int = 500, n: int = 1, *, seed: int = 0, temperature: float = 1.0,
                 top_k: int | None = None) -> list[str]:
        """n continuations of `prompt`, `length` characters each (the prompt not repeated), a text model's.

        Each new character's logits are the model's on the last block_size characters, as
        nanoGPT's generate (generate.py); the n streams run batched, with the key/value cache.
        """
        import jax

        from .generate import generate_ids
        if self.model.kind.sample != "text":
            raise UsageError(f"{self.model.name} generates words: use run.sample(n)")
        self._check_draws(temperature, top_k)
        for name, value in (("length", length), ("num_samples", n)):
            if not (isinstance(value, int) and value >= 1):
                raise SettingError(name, f"{value!r} must be a positive integer")
        if not prompt:
            raise SettingError("prompt", "is empty; give at least one character (the default is a newline)")
        try:
            ids = self.vocab.encode(prompt)
        except DataError as e:
            raise SettingError("prompt", f"{prompt[:40]!r}: {e}") from None
        new = generate_ids(self.model, self.state.params, self.state.model_state, jax.random.key(seed),
                           jax.numpy.asarray(ids), n=n, length=length, temperature=temperature, top_k=top_k,
                           config=self.config)
        return [self.vocab.decode(row) for row in jax.device_get(new)]

    def _check_draws(self, temperature: float, top_k: int | None) -> None:
        if top_k is not None and not 1 <= top_k <= self.vocab.size:
            raise SettingError("top_k", f"{top_k} must be in 1..{self.vocab.size} (the vocabulary)")
        if not temperature > 0:
            raise SettingError("temperature", f"{temperature} must be positive")

    def metadata(self) -> dict:
        """What a checkpoint records besides the arrays."""
        return checkpoint_metadata(self.model, self.config, self.train_config, self.vocab, self.info)

    def save(self, out_dir: str) -> str:
        """Write the checkpoint (atomically) into out_dir; returns its path."""
        checkpoint.check_out_dir(out_dir)
        return checkpoint.save(out_dir, self.state, self.metadata())


def load_run(out_dir: str, *, data=None) -> Run:
    """The Run saved in out_dir, with its data: `data`, else the file it was trained on.

    Without `data`, a recorded file that is gone or no longer matches the vocabulary
    leaves the Run without words (sampling works, `evaluate` returns {}).

    Raises:
        CheckpointError: no checkpoint, a corrupt one, or metadata this version cannot use.
        DataError: `data` cannot be read or its characters differ from the checkpoint's.
    """
    run = from_checkpoint(out_dir)
    try:
        loaded = read_data(data if data is not None else run.info.get("data"), run.model.kind)
        if run.model.kind.vocab(loaded.items) != run.vocab:
            raise DataError(f"{loaded.source or '<words>'}: its characters differ from the checkpoint's vocabulary")
    except DataError:
        if data is not None:
            raise
        return run
    run.words, run.data_sha256 = loaded.words, loaded.sha256
    run.splits = build_splits(run.model, run.config, loaded.words, run.vocab)
    return run


def from_checkpoint(out_dir: str) -> Run:
    """The Run in out_dir without its data (no words, no splits)."""
    import jax

    from .train import create_train_state
    meta, raw = checkpoint.load(out_dir)
    path = os.path.join(out_dir, checkpoint.CHECKPOINT)
    try:
        model = models.get(meta["model"])
        config = model.Config(**model.upgrade_config(meta["config"], raw.get("params", {})))  # old names renamed
        tc = TrainConfig(**meta["train"])
        if meta.get("dataset", model.dataset) != model.dataset:
            raise ValueError(f"a {model.name} reads {model.dataset} data, not {meta['dataset']}")
        vocab = Vocab(tuple(meta["vocab"]), boundary=model.kind.boundary)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata is not usable ({e})") from None
    ts = checkpoint.restore(create_train_state(model, config, tc, jax.random.key(0)), raw, path)
    info = {k: v for k, v in meta.items() if k not in ("model", "dataset", "config", "train", "vocab", "format",
                                                       "step", "state_sha256")}
    return Run(model, config, tc, vocab, [], {}, ts, info=info)


# ----------------------------------------------------------------------------- training


def train_model(model: str = "mlp", *, data=None, steps: int | None = None, seed: int = 42, out: str | None = None,
                quiet: bool = True, resume: bool = False, overwrite: bool = False, devices: int | None = 1,
                stop=None, tensorboard: bool = False, **overrides) -> Run:
    """Train a registered model and evaluate it on every split.

    Args:
        model: a registry name ("bigram", "bigram-nn", "mlp", "mlp-bn", "mlp-deep", ...).
        data: a text file with one word per line, or a list of words (default: the bundled names).
        steps: training steps (default: the model's, e.g. 200,000 for the MLPs).
        seed: initialisation and minibatch seed (a resumed run keeps its own).
        out: a folder to checkpoint into (every SAVE_EVERY steps and at the end) with a
            metrics.jsonl log; None keeps everything in memory.
        quiet: no progress output.
        resume: continue the run saved in `out` (its settings; `steps` and training
            settings may be raised or changed).
        overwrite: replace a run already saved in `out` (otherwise that is refused).
        devices: data parallel over this many devices, None for all (parallel.data_mesh):
            each batch split over them, BatchNorm on the global batch, the same numbers as
            one device up to float rounding. In a multi-process run (parallel.initialize
            called first) the devices of every process take part and only process 0
            prints and writes `out`.
        stop: a threading.Event; once set (e.g. on SIGTERM) the chunk in flight is the last,
            its state is saved in `out` and Terminated raised.
        tensorboard: also write TensorBoard event files into `out` (needs tensorboardX, the
            tensorboard extra): each chunk's training loss and learning rate (as metrics.jsonl),
            and every split's loss at the end (tensorboard.py).
        **overrides: any model config field (n_hidden=64, init="unit") or TrainConfig
            field (lr=0.05, batch_size=None, optimizer="adamw").
    Returns:
        the trained Run; run.summary has steps, seconds, compile_seconds, final_loss.
    Raises:
        UsageError, DataError, CheckpointError: a bad setting, data file or checkpoint
            (checked before anything is allocated), or a model too big for the memory.
        ImportError: tensorboard=True without tensorboardX (before anything is trained).
        Stopped: training diverged (train.DIVERGENCE_FACTOR); `.run` holds the last good
            state, also saved in `out`. Terminated (a Stopped): `stop` was set.
    """
    from .runbuild import train
    return train(model, data=data, steps=steps, seed=seed, out=out, quiet=quiet, resume=resume, overwrite=overwrite,
                 devices=devices, stop=stop, tensorboard=tensorboard, **overrides)
