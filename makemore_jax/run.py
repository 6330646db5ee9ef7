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

Errors name settings as `name=value` (the command line shows them as `--name value`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from . import checkpoint, memory, models
from .checkpoint import CheckpointError
from .data import Data, DataError, Vocab, build_dataset, read_data, split_words
from .models import Model
from .train import TrainConfig, TrainState

SPLITS = ("train", "dev", "test")
METRICS = "metrics.jsonl"
SAVE_EVERY = 10_000  # steps between checkpoints while training (at least one chunk), and at the end
DEFAULT_MAX_LEN = 32  # sample length when a checkpoint does not record its longest word


class UsageError(ValueError):
    """A bad setting or request (exit status 2 on the command line)."""


class Stopped(RuntimeError):
    """Training stopped without a result (exit status 1); `run` holds the last good state."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


# ----------------------------------------------------------------------------- the data


def build_splits(model: Model, config, words: list[str], vocab: Vocab) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The lectures' 80/10/10 split (seed 42), each part as the model's (X, Y) numpy arrays.

    The one place a run builds its datasets.
    """
    parts = dict(zip(SPLITS, split_words(words)))
    return {name: build_dataset(model.dataset, w, vocab, config.block_size) for name, w in parts.items()}


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Run:
    """A model, its data and its TrainState, with what a checkpoint records about them.

    `info` holds the rest of the checkpoint's metadata: "data" (the file's path or None),
    "data_sha256", "seed" and "max_word_len", and "results" once evaluated by train_model.
    `data_sha256` is the hash of the data loaded now (None if none could be).
    """

    model: Model
    config: Any
    train_config: TrainConfig
    vocab: Vocab
    words: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    state: TrainState
    summary: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    data_sha256: str | None = None

    @property
    def train_words(self) -> list[str]:
        return split_words(self.words)[0]

    def evaluate(self) -> dict[str, float]:
        """Exact mean loss (nats) of every non-empty split: {"train": ..., "dev": ..., "test": ...}."""
        from .evaluate import split_loss
        ts = self.state
        apply, kind = self.model.bind(self.config), self.model.kind
        return {name: split_loss(apply, ts.params, ts.model_state, *kind.eval_arrays(arrays, self.config.block_size))
                for name, arrays in self.splits.items() if len(arrays[0])}

    def sample(self, n: int = 10, *, seed: int = 0, temperature: float = 1.0, top_k: int | None = None,
               max_len: int | None = None) -> list[str]:
        """n generated words ("" where the model ended a word at once).

        max_len defaults to twice the longest training word.
        """
        import jax

        from .sample import decode, sample_ids
        if top_k is not None and not 1 <= top_k <= self.vocab.size:
            raise UsageError(f"top_k={top_k} must be in 1..{self.vocab.size} (the vocabulary)")
        if not temperature > 0:
            raise UsageError(f"temperature={temperature} must be positive")
        max_len = max_len or 2 * self.info.get("max_word_len", DEFAULT_MAX_LEN // 2)
        if self.model.dataset == "sequence":  # a sequence model has no positions past its block
            max_len = min(max_len, self.config.block_size)
        ids = sample_ids(self.model, self.state.params, self.state.model_state, jax.random.key(seed), n=n,
                         block_size=self.config.block_size, max_len=max_len, temperature=temperature, top_k=top_k,
                         config=self.config)
        return decode(jax.device_get(ids), self.vocab)

    def metadata(self) -> dict:
        """What a checkpoint records besides the arrays."""
        return {"model": self.model.name, "config": dataclasses.asdict(self.config),
                "train": dataclasses.asdict(self.train_config), "vocab": list(self.vocab.chars), **self.info}

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
    run = _from_checkpoint(out_dir)
    try:
        loaded = read_data(data if data is not None else run.info.get("data"))
        if Vocab.from_words(loaded.words) != run.vocab:
            raise DataError(f"{loaded.source or '<words>'}: its characters differ from the checkpoint's vocabulary")
    except DataError:
        if data is not None:
            raise
        return run
    run.words, run.data_sha256 = loaded.words, loaded.sha256
    run.splits = build_splits(run.model, run.config, loaded.words, run.vocab)
    return run


def _from_checkpoint(out_dir: str) -> Run:
    """The Run in out_dir without its data (no words, no splits)."""
    import jax

    from .train import create_train_state
    meta, raw = checkpoint.load(out_dir)
    path = os.path.join(out_dir, checkpoint.CHECKPOINT)
    try:
        model = models.get(meta["model"])
        config = model.Config(**meta["config"])
        tc = TrainConfig(**meta["train"])
        vocab = Vocab(tuple(meta["vocab"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata is not usable ({e})") from None
    ts = checkpoint.restore(create_train_state(model, config, tc, jax.random.key(0)), raw, path)
    info = {k: v for k, v in meta.items() if k not in ("model", "config", "train", "vocab", "format", "step",
                                                       "state_sha256")}
    return Run(model, config, tc, vocab, [], {}, ts, info=info)


# ----------------------------------------------------------------------------- training


def train_model(model: str = "mlp", *, data=None, steps: int | None = None, seed: int = 42, out: str | None = None,
                quiet: bool = True, resume: bool = False, overwrite: bool = False, devices: int | None = 1,
                **overrides) -> Run:
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
        **overrides: any model config field (n_hidden=64, init="unit") or TrainConfig
            field (lr=0.05, batch_size=None, optimizer="adamw").
    Returns:
        the trained Run; run.summary has steps, seconds, compile_seconds, final_loss.
    Raises:
        UsageError, DataError, CheckpointError: a bad setting, data file or checkpoint
            (checked before anything is allocated), or a model too big for the memory.
        Stopped: training diverged (train.DIVERGENCE_FACTOR); `.run` holds the last good
            state, also saved in `out`.
    """
    from . import parallel
    spec = _get_model(model)
    config_over, train_over = _split_overrides(spec, overrides)
    try:
        mesh = parallel.data_mesh(devices)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None
    writer = parallel.is_writer()  # only process 0 of a multi-process run prints and writes
    quiet = quiet or not writer
    if steps is not None:
        train_over["steps"] = steps
    saved = _check_out(out, resume=resume, overwrite=overwrite)
    loaded = read_data(data)
    vocab = Vocab.from_words(loaded.words)
    if resume:
        run = _resumed(spec, out, loaded, vocab, config_over, train_over)
    else:
        run = _new(spec, loaded, vocab, config_over, train_over, seed)
    if mesh is not None and run.train_config.batch_size is not None and run.train_config.batch_size % mesh.size:
        raise UsageError(f"batch_size={run.train_config.batch_size} does not split evenly over {mesh.size} devices")
    if saved and overwrite and writer:
        for name in (checkpoint.CHECKPOINT, checkpoint.META, METRICS):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    _say(quiet, _describe(run, loaded))
    _fit(run, out if writer else None, quiet=quiet, resume=resume, mesh=mesh)
    run.info["results"] = {f"{k}_loss": round(v, 6) for k, v in run.evaluate().items()}
    if out is not None and writer:
        checkpoint.save(out, run.state, run.metadata())
        if not run.model.ability(models.ClosedForm):
            with open(os.path.join(out, METRICS), "a", encoding="utf-8") as f:
                f.write(checkpoint.dumps_json({"step": int(run.state.step), "eval": run.info["results"]}) + "\n")
    return run


def _say(quiet: bool, *lines: str) -> None:
    if not quiet:
        print(*lines, sep="\n", flush=True)


def _get_model(name: str) -> Model:
    try:
        return models.get(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _split_overrides(model: Model, overrides: dict) -> tuple[dict, dict]:
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config_over = {k: v for k, v in overrides.items() if k in model.config_fields and k != "vocab_size"}
    train_over = {k: v for k, v in overrides.items() if k in train_fields}
    for k, v in overrides.items():
        if k not in config_over and k not in train_over:
            raise UsageError(f"{k}={v!r} does not apply to model {model.name}")
    return config_over, train_over


def _check_out(out: str | None, *, resume: bool, overwrite: bool) -> bool:
    """Refuse a folder that cannot be written, or one holding a run neither resumed nor overwritten."""
    if resume and overwrite:
        raise UsageError("resume=True and overwrite=True exclude each other")
    if out is None:
        if resume:
            raise UsageError("resume=True needs out=FOLDER, the run to continue")
        return False
    checkpoint.check_out_dir(out)
    saved = os.path.isfile(os.path.join(out, checkpoint.CHECKPOINT))
    if saved and not (resume or overwrite):
        raise UsageError(f"{out}: holds a checkpoint already; continue it with resume=True, replace it with "
                         f"overwrite=True, or choose another folder")
    return saved


def _new(model, loaded: Data, vocab: Vocab, config_over: dict, train_over: dict, seed: int) -> Run:
    import jax

    from .train import create_train_state
    try:
        config = model.make_config(words=loaded.words, vocab_size=vocab.size, **config_over)
        tc = TrainConfig(**{**model.train_defaults, **train_over})
    except ValueError as e:
        raise UsageError(str(e)) from None
    splits = _checked_splits(model, config, tc, loaded, vocab)
    return Run(model, config, tc, vocab, loaded.words, splits,
               create_train_state(model, config, tc, jax.random.key(seed)), info=_data_info(loaded, seed),
               data_sha256=loaded.sha256)


def _resumed(model, out: str, loaded: Data, vocab: Vocab, config_over: dict, train_over: dict) -> Run:
    meta, _ = checkpoint.load(out)
    if meta.get("model") != model.name:
        raise UsageError(f"{out}: the checkpoint there is a {meta.get('model')}, not a {model.name}")
    for k, v in config_over.items():
        if meta["config"].get(k) != v:
            raise UsageError(f"{out}: the checkpoint there was trained with {k}={meta['config'].get(k)!r}, not "
                             f"{k}={v!r}; leave the setting out to continue it, or start over with overwrite=True")
    if meta.get("data_sha256") not in (None, loaded.sha256):
        raise UsageError(f"{loaded.source or '<words>'}: not the data the checkpoint in {out} was trained on "
                         f"({meta.get('data')}); continue with that data, or start over with overwrite=True")
    if list(vocab.chars) != meta["vocab"]:
        raise UsageError(f"{loaded.source or '<words>'}: its characters differ from the checkpoint's vocabulary")
    run = _from_checkpoint(out)
    try:
        run.train_config = dataclasses.replace(run.train_config, **train_over)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not run.model.ability(models.ClosedForm) and run.train_config.steps <= int(run.state.step):
        raise UsageError(f"{out}: the run there is at step {int(run.state.step):,} already; to train it further, "
                         f"give steps=N with N above {int(run.state.step)}")
    run.splits = _checked_splits(model, run.config, run.train_config, loaded, vocab)
    run.words, run.data_sha256 = loaded.words, loaded.sha256
    run.info.update(data=loaded.source, data_sha256=loaded.sha256)  # the run's own seed stays
    return run


def _data_info(loaded: Data, seed: int) -> dict:
    return {"data": loaded.source, "data_sha256": loaded.sha256, "seed": seed,
            "max_word_len": max(map(len, loaded.words))}


def _checked_splits(model, config, tc: TrainConfig, loaded: Data, vocab: Vocab) -> dict:
    """The splits, once the training split is known usable and the run known to fit in memory."""
    where = loaded.source or "<words>"
    if len(split_words(loaded.words)[0]) == 0:
        raise UsageError(f"{where}: {len(loaded.words)} word is too few: the training split (80%) would be "
                         f"empty; give at least 2 words")
    splits = build_splits(model, config, loaded.words, vocab)
    X, Y = splits["train"]
    if tc.batch_size is not None and tc.batch_size > len(X) and not model.ability(models.ClosedForm):
        raise UsageError(f"batch_size={tc.batch_size} is larger than the training split ({len(X):,} examples)")
    batch = len(X) if tc.batch_size is None else tc.batch_size
    need = memory.estimate_bytes(model, config, tc, (batch, *X.shape[1:]), (batch, *Y.shape[1:]))
    have = memory.available_bytes()
    if need > have:
        raise UsageError(f"{model.name} needs about {memory.format_bytes(need)} (parameters, optimiser state and "
                         f"one batch's activations), more than the {memory.format_bytes(have)} of memory available")
    return splits


def _describe(run: Run, loaded: Data) -> str:
    import jax
    sizes = {name: len(X) for name, (X, _) in run.splits.items()}
    line = (f"{run.model.name}: {sum(x.size for x in jax.tree.leaves(run.state.params)):,} parameters, "
            f"{len(run.words):,} words from {loaded.source or 'Python'}, vocabulary {run.vocab.size}, "
            f"train/dev/test {sizes['train']:,}/{sizes['dev']:,}/{sizes['test']:,} examples")
    empty = [name for name in SPLITS if not sizes[name]]
    if empty:
        line += f" ({' and '.join(empty)} empty: too few words; losses on the other splits only)"
    return line


def _fit(run: Run, out: str | None, *, quiet: bool, resume: bool, mesh=None) -> None:
    """Train run.state in place (or fit in closed form), checkpointing into `out`; data parallel over `mesh`."""
    from .parallel import local_copy
    from .train import Diverged, fit
    X, Y = run.splits["train"]
    closed_form = run.model.ability(models.ClosedForm)
    if closed_form:
        run.state = run.state.replace(params=closed_form.fit(run.config, X, Y))
        run.summary = {"steps": 0, "seconds": 0.0, "compile_seconds": 0.0, "final_loss": float("nan")}
        return
    log_path = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        log_path = os.path.join(out, METRICS)
        _cut_log(log_path, int(run.state.step) if resume else 0)
    save_every = max(run.train_config.chunk_size, SAVE_EVERY)

    def on_chunk(good):  # keep the last good state on disk for resume and after divergence
        if out is not None and int(good.step) % save_every == 0:
            checkpoint.save(out, local_copy(good), run.metadata())

    try:
        run.state, run.summary = fit(run.model, run.config, run.train_config, X, Y, run.state, on_chunk=on_chunk,
                                     log_path=log_path, quiet=quiet, mesh=mesh)
        run.state = local_copy(run.state)
    except Diverged as e:
        run.state = local_copy(e.last_good)
        where = ""
        if out is not None:
            where = f" in {checkpoint.save(out, run.state, run.metadata())}"
        raise Stopped(f"{e}; kept the last good state (step {int(run.state.step):,}){where}", run) from None


def _cut_log(path: str, step: int) -> None:
    """Keep only the metrics.jsonl lines up to `step` (an interrupted run may have logged past its checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except (ValueError, AttributeError):
            break  # a torn last line: drop it and what follows
    if kept != lines:
        checkpoint.atomic_write(path, "".join(kept).encode("utf-8"))
