"""The run record: a trained (or loaded) model with its data, and its checkpoint both ways.

    from makemore_jax import train_model, load_run
    run = train_model("mlp-bn", steps=20_000, lr_decay_step=10_000)   # lifecycle.py
    run.evaluate()                  # {"train": 2.07, "dev": 2.11, "test": 2.11} (nats)
    run.sample(10)                  # ten names
    run.save("out/bn"); run = load_run("out/bn")

A Run composes the functional core without hiding it: it holds the plain pieces (the
`Model`, its config, the `TrainConfig`, the `Vocab` or `TokenVocab`, the numpy splits and the `TrainState`),
ready to pass to `train.fit`, `evaluate.split_loss`, `sample.sample_ids` or `checkpoint`
directly. How a run is built, fitted and saved is lifecycle.py's; `Stopped` is how a run
ends without a result.

Errors name settings as `name=value` (the command line shows them as `--name value`:
settings.UsageError).
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
from .kinds import build_splits
from .models import Model
from .optim import TrainConfig
from .settings import SettingError, UsageError
from .tokens import TokenVocab, vocab_from_meta
from .train import TrainState

METRICS = "metrics.jsonl"  # a run's training log in its folder: one JSON line per chunk, then the split losses
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


# ----------------------------------------------------------------------------- the run


def checkpoint_metadata(model: Model, config, tc: TrainConfig, vocab: Vocab, info: dict) -> dict:
    """What a checkpoint records besides the arrays (the one place it is built)."""
    return {"model": model.name, "dataset": model.dataset, "config": dataclasses.asdict(config),
            "train": dataclasses.asdict(tc), **vocab.to_meta(), **info}


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
    vocab: Vocab | TokenVocab
    words: list[str] | str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    state: TrainState
    summary: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    data_sha256: str | None = None

    def bits_per_byte(self, losses: dict[str, float]) -> dict[str, float]:
        """Each split's loss in `losses` (nats per token, from `evaluate`) as bits per UTF-8 byte of its
        predicted tokens (evaluate.bits_per_byte); {} for a kind that does not count bytes (words)."""
        from .evaluate import bits_per_byte
        out = {}
        for name, nats in losses.items():
            n_bytes = self.model.kind.target_bytes(self.splits[name], self.vocab)
            if n_bytes is not None:
                out[name] = bits_per_byte(nats, len(self.splits[name][1]), n_bytes)
        return out

    @property
    def train_words(self) -> list[str]:
        return self.model.kind.split(self.words)[0] if self.words else []

    def evaluate(self, *, train: bool = True) -> dict[str, float]:
        """Exact mean loss (nats) of every non-empty split: {"train": ..., "dev": ..., "test": ...} (text: "val");
        train=False leaves the training split out."""
        from .evaluate import kind_loss
        ts = self.state
        return {name: kind_loss(self.model, self.config, ts.params, ts.model_state, arrays)
                for name, arrays in self._evaluated(train)}

    def compile_evaluation(self, *, train: bool = True) -> None:
        """Compile what `evaluate(train=train)` runs, from the state's shapes alone, and run nothing;
        the evaluate that follows starts at once (evaluate.compile_split_loss)."""
        import jax

        from .evaluate import compile_kind_loss
        shapes = jax.eval_shape(lambda: (self.state.params, self.state.model_state))
        for _, arrays in self._evaluated(train):
            compile_kind_loss(self.model, self.config, *shapes, arrays)

    def _evaluated(self, train: bool) -> list[tuple[str, tuple]]:
        """The splits `evaluate` scores: the non-empty ones, the training split only with `train`."""
        return [(name, arrays) for name, arrays in self.splits.items() if len(arrays[0]) and (train or name != "train")]

    def logits(self, ids) -> np.ndarray:
        """The model's eval-mode logits at every position of one sequence, as transformers' `model(ids).logits[0]`.

        Args:
            ids: int [T] token ids, 1 <= T <= block_size, each below the vocabulary's size.
        Returns:
            float32 [T, vocab_size]: row t scores the token after ids[:t + 1].
        Raises:
            SettingError: ids empty, too long, or outside the vocabulary; UsageError: a model that
                reads fixed windows (the context models) has no logits per position.
        """
        import jax
        from .evaluate import sequence_logits
        ids = np.asarray(ids)
        size, T = self.vocab.size, self.config.block_size
        if ids.ndim != 1 or not 1 <= len(ids) <= T or not np.issubdtype(ids.dtype, np.integer):
            raise SettingError("ids", f"must be one sequence of 1 to {T} (block_size) integer token ids, got "
                                      f"shape {ids.shape} of {ids.dtype}")
        if ids.min() < 0 or ids.max() >= size:
            raise SettingError("ids", f"holds {int(ids.max() if ids.max() >= size else ids.min())}, outside the "
                                      f"vocabulary's 0..{size - 1}")
        apply = self.model.bind(self.config)
        ts, window = self.state, jax.ShapeDtypeStruct((T,), np.int32)  # every model reads a full window
        if jax.eval_shape(lambda x: sequence_logits(apply, ts.params, ts.model_state, x), window).ndim != 2:
            raise UsageError(f"{self.model.name} reads windows of {T} tokens and scores the next one only; "
                             "logits per position are a sequence or text model's")
        return np.asarray(jax.device_get(sequence_logits(apply, ts.params, ts.model_state, ids.astype(np.int32))))

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
        self._check_draws(temperature, top_k, text=False)
        max_len = max_len or 2 * self.info.get("max_word_len", DEFAULT_MAX_LEN // 2)
        for b, start in enumerate(range(0, n, batch_size)):
            ids = sample_ids(self.model, self.state.params, self.state.model_state,
                             jax.random.fold_in(jax.random.key(seed), b), n=min(batch_size, n - start),
                             block_size=self.config.block_size, max_len=max_len, temperature=temperature,
                             top_k=top_k, config=self.config)
            yield decode(jax.device_get(ids), self.vocab)

    def generate(self, prompt: str = "\n", length: int = 500, n: int = 1, *, seed: int = 0, temperature: float = 1.0,
                 top_k: int | None = None) -> list[str]:
        """n continuations of `prompt`, `length` tokens each (characters for a char model; the prompt not
        repeated), a text model's; the prompt is encoded and the continuations decoded by the run's vocabulary.

        Each new token's logits are the model's on the last block_size tokens, as
        nanoGPT's generate (generate.py); the n streams run batched, with the key/value cache.
        """
        import jax

        from .generate import generate_ids
        self._check_draws(temperature, top_k, text=True)
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

    @property
    def continues_text(self) -> bool:
        """Sampling continues running text (`generate`) rather than drawing words (`sample`)."""
        return self.model.kind.continues_text

    def _check_draws(self, temperature: float, top_k: int | None, *, text: bool) -> None:
        if text != self.continues_text:
            raise UsageError(f"{self.model.name} continues running text: use run.generate(prompt=..., length=...)"
                             if self.continues_text else f"{self.model.name} generates words: use run.sample(n)")
        if top_k is not None and not 1 <= top_k <= self.vocab.size:
            raise SettingError("top_k", f"{top_k} must be in 1..{self.vocab.size} (the vocabulary)")
        if not temperature > 0:
            raise SettingError("temperature", f"{temperature} must be positive")

    def calibrated(self) -> Run | None:
        """This run with its BatchNorm statistics recomputed over the whole training split (lecture 3),
        or None for a model without them (no Calibration ability, or no state)."""
        calibration = self.model.ability(models.Calibration)
        if not calibration or not self.state.model_state:
            return None
        state = calibration.calibrate(self.state.params, self.state.model_state, self.splits["train"][0])
        return dataclasses.replace(self, state=self.state.replace(model_state=state))

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
        if run.model.kind.vocab(loaded.items, run.vocab.setting) != run.vocab:
            raise DataError(f"{loaded.source or '<words>'}: its characters differ from the checkpoint's vocabulary")
    except DataError:
        if data is not None:
            raise
        return run
    run.words, run.data_sha256 = loaded.items, loaded.sha256
    run.splits = build_splits(run.model.kind, loaded.items, run.vocab, run.config.block_size)
    return run


def from_checkpoint(out_dir: str) -> Run:
    """The Run in out_dir without its data (no words, no splits)."""
    import jax

    from .train import init_train_state
    meta, raw = checkpoint.load(out_dir)
    path = os.path.join(out_dir, checkpoint.CHECKPOINT)
    try:
        model = models.get(meta["model"])
        config = model.Config(**model.upgrade_config(meta["config"], raw.get("params", {})))  # old names renamed
        tc = TrainConfig(**meta["train"])
        if meta.get("dataset", model.dataset) != model.dataset:
            raise ValueError(f"a {model.name} reads {model.dataset} data, not {meta['dataset']}")
        vocab = vocab_from_meta(meta, boundary=model.kind.boundary)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata is not usable ({e})") from None
    template = checkpoint.template_of(lambda: init_train_state(model, config, tc, jax.random.key(0)))
    ts = checkpoint.restore(template, raw, path)
    info = {k: v for k, v in meta.items() if k not in ("model", "dataset", "config", "train", "vocab", "tokenizer",
                                                       "format", "step", "state_sha256")}
    return Run(model, config, tc, vocab, [], {}, ts, info=info)
