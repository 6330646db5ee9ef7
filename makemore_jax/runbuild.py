"""The one way a run is built: settings checked, data loaded and split, state made.

`train_model`, and the `train`, `sweep`, `diagnose` and `lr-find` commands all start here
(`prepare`), so every check is written once and words its errors by field
(settings.UsageError): the batch larger than the training split, a flag that does not
apply to the model, a model too big for the memory, a checkpoint folder in the way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from . import checkpoint, memory, models
from .data import Data, DataError, Vocab, read_data, split_words
from .faults import FolderLock
from .models import ClosedForm, Model
from .optim import TrainConfig
from .run import METRICS, Run, build_splits
from .settings import SettingError, UsageError, from_config_error
from .train import check_batch_size

TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
EVENTS_PREFIX = "events.out.tfevents."  # how TensorBoard event files are named


@dataclasses.dataclass
class Prepared:
    """A run's settings and data, checked, before any state is made."""

    model: Model
    config: object
    train_config: TrainConfig
    loaded: Data
    vocab: Vocab
    splits: dict


def get_model(name: str) -> Model:
    try:
        return models.get(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def split_overrides(model: Model, overrides: dict) -> tuple[dict, dict]:
    """Overrides -> (model config fields, TrainConfig fields); any other is refused."""
    config_over = {k: v for k, v in overrides.items() if k in model.config_fields and k != "vocab_size"}
    train_over = {k: v for k, v in overrides.items() if k in TRAIN_FIELDS}
    for k, v in overrides.items():
        if k not in config_over and k not in train_over:
            raise UsageError("{setting:set} does not apply to {model:word}", setting=(k, v), model=("model", model.name))
    return config_over, train_over


def make_settings(model: Model, words, vocab: Vocab, config_over: dict, train_over: dict):
    """(config, TrainConfig) with the model's defaults, then the overrides."""
    try:
        config = model.make_config(words=words, vocab_size=vocab.size, **config_over)
    except ValueError as e:
        raise from_config_error(e, model.config_fields) from None
    return config, TrainConfig(**{**model.train_defaults, **train_over})


def prepare(model: str | Model, *, data=None, overrides: dict | None = None, loaded: Data | None = None) -> Prepared:
    """Check `overrides` against the model, load and split the data, check the run fits.

    Raises:
        UsageError, DataError: a bad setting or data file.
    """
    model = get_model(model) if isinstance(model, str) else model
    config_over, train_over = split_overrides(model, dict(overrides or {}))
    loaded = loaded or read_data(data)
    vocab = Vocab.from_words(loaded.words)
    config, tc = make_settings(model, loaded.words, vocab, config_over, train_over)
    return Prepared(model, config, tc, loaded, vocab, checked_splits(model, config, tc, loaded, vocab))


def checked_splits(model: Model, config, tc: TrainConfig, loaded: Data, vocab: Vocab) -> dict:
    """The splits, once the training split is known usable and the run known to fit in memory."""
    where = loaded.source or "<words>"
    if len(split_words(loaded.words)[0]) == 0:
        raise UsageError(f"{where}: {len(loaded.words)} word is too few: the training split (80%) would be "
                         f"empty; give at least 2 words")
    splits = build_splits(model, config, loaded.words, vocab)
    X, Y = splits["train"]
    if not model.ability(ClosedForm):
        check_batch_size(tc.batch_size, len(X))
    batch = len(X) if tc.batch_size is None else tc.batch_size
    need = memory.estimate_bytes(model, config, tc, (batch, *X.shape[1:]), (batch, *Y.shape[1:]))
    have = memory.available_bytes()
    if need > have:
        raise UsageError(f"{model.name} needs about {memory.format_bytes(need)} (parameters, optimiser state and "
                         f"one batch's activations), more than the {memory.format_bytes(have)} of memory available")
    return splits


def data_info(loaded: Data, seed: int) -> dict:
    return {"data": loaded.source, "data_sha256": loaded.sha256, "seed": seed,
            "max_word_len": max(map(len, loaded.words))}


def new_run(p: Prepared, seed: int) -> Run:
    import jax

    from .train import create_train_state
    ts = create_train_state(p.model, p.config, p.train_config, jax.random.key(seed))
    return Run(p.model, p.config, p.train_config, p.vocab, p.loaded.words, p.splits, ts,
               info=data_info(p.loaded, seed), data_sha256=p.loaded.sha256)


def resumed_run(model: Model, out: str, loaded: Data, overrides: dict) -> Run:
    """The run saved in `out`, continued on `loaded` with the training settings in `overrides`."""
    from .run import from_checkpoint
    config_over, train_over = split_overrides(model, overrides)
    vocab = Vocab.from_words(loaded.words)
    meta, _ = checkpoint.load(out)
    if meta.get("model") != model.name:
        raise UsageError(f"{out}: the checkpoint there is a {meta.get('model')}, not a {model.name}")
    for k, v in config_over.items():
        if meta["config"].get(k) != v:
            raise UsageError(f"{out}: the checkpoint there was trained with {{was}}, not {{now}}; leave the setting "
                             f"out to continue it, or start over with {{overwrite:set}}", was=(k, meta["config"].get(k)),
                             now=(k, v), overwrite=("overwrite", True))
    if meta.get("data_sha256") not in (None, loaded.sha256):
        raise UsageError(f"{loaded.source or '<words>'}: not the data the checkpoint in {out} was trained on "
                         f"({meta.get('data')}); continue with that data, or start over with {{overwrite:set}}",
                         overwrite=("overwrite", True))
    if list(vocab.chars) != meta["vocab"]:
        raise UsageError(f"{loaded.source or '<words>'}: its characters differ from the checkpoint's vocabulary")
    run = from_checkpoint(out)
    run.train_config = dataclasses.replace(run.train_config, **train_over)
    at = int(run.state.step)
    if not model.ability(ClosedForm) and run.train_config.steps <= at:
        raise SettingError("steps", f"{run.train_config.steps:,}: the run in {out} is at step {at:,} already; to "
                                    f"train it further, give a number above {at}")
    run.splits = checked_splits(model, run.config, run.train_config, loaded, vocab)
    run.words, run.data_sha256 = loaded.words, loaded.sha256
    run.info.update(data=loaded.source, data_sha256=loaded.sha256)  # the run's own seed stays
    return run


def check_out(out: str | None, *, resume: bool, overwrite: bool) -> bool:
    """Refuse a folder that cannot be written, or one holding a run neither resumed nor overwritten."""
    if resume and overwrite:
        raise UsageError("{resume:set} and {overwrite:set} exclude each other", resume=("resume", True),
                         overwrite=("overwrite", True))
    if out is None:
        if resume:
            raise UsageError("{resume:set} needs {out:word}, the run to continue", resume=("resume", True),
                             out=("out", "FOLDER"))
        return False
    checkpoint.check_out_dir(out)
    saved = os.path.isfile(os.path.join(out, checkpoint.CHECKPOINT))
    if saved and not (resume or overwrite):
        raise UsageError(f"{out}: holds a checkpoint already; continue it with {{resume:set}}, replace it with "
                         f"{{overwrite:set}}, or choose another folder", resume=("resume", True),
                         overwrite=("overwrite", True))
    return saved


def clear_out(out: str) -> None:
    """Remove a run's files from `out` (--overwrite), its TensorBoard event files included."""
    events = [name for name in os.listdir(out) if name.startswith(EVENTS_PREFIX)]
    for name in (checkpoint.CHECKPOINT, checkpoint.META, METRICS, *events):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


def check_tensorboard(tensorboard: bool, out: str | None) -> None:
    """Refuse tensorboard=True without a folder, or without tensorboardX (ImportError), before any work."""
    if not tensorboard:
        return
    if out is None:
        raise UsageError("{tensorboard:set} writes its event files into {out:word}", tensorboard=("tensorboard", True),
                         out=("out", "FOLDER"))
    from .tensorboard import require
    require()


def open_board(run: Run, out: str, resume: bool):
    """(the TensorBoard writer on `out`, the loop callbacks logging into it) for `run`.

    A resumed run hides the events logged past its checkpoint (as cut_log does metrics.jsonl's).
    """
    import jax

    from .optim import make_schedule
    from .tensorboard import LossCallback, open_writer
    board = open_writer(out, purge_step=int(run.state.step) + 1 if resume else None)
    if run.model.ability(ClosedForm):
        return board, []
    return board, [LossCallback([board], [jax.jit(make_schedule(run.train_config))])]


def describe(run: Run, loaded: Data) -> str:
    import jax
    sizes = {name: len(X) for name, (X, _) in run.splits.items()}
    line = (f"{run.model.name}: {sum(x.size for x in jax.tree.leaves(run.state.params)):,} parameters, "
            f"{len(run.words):,} words from {loaded.source or 'Python'}, vocabulary {run.vocab.size}, "
            f"train/dev/test {sizes['train']:,}/{sizes['dev']:,}/{sizes['test']:,} examples")
    empty = [name for name in ("train", "dev", "test") if not sizes[name]]
    if empty:
        line += f" ({' and '.join(empty)} empty: too few words; losses on the other splits only)"
    return line


def train(model: str = "mlp", *, data=None, steps: int | None = None, seed: int = 42, out: str | None = None,
          quiet: bool = True, resume: bool = False, overwrite: bool = False, devices: int | None = 1,
          stop=None, tensorboard: bool = False, **overrides) -> Run:
    """run.train_model: build the run (new or resumed), fit it, evaluate it, save it."""
    from . import parallel
    from .run import fit_run
    spec = get_model(model)
    split_overrides(spec, overrides)
    try:
        mesh = parallel.data_mesh(devices)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None
    writer = parallel.is_writer()  # only process 0 of a multi-process run prints and writes
    quiet = quiet or not writer
    if steps is not None:
        overrides["steps"] = steps
    saved = check_out(out, resume=resume, overwrite=overwrite)
    check_tensorboard(tensorboard, out)
    loaded = read_data(data)
    if resume:
        run = resumed_run(spec, out, loaded, overrides)
    else:
        run = new_run(prepare(spec, overrides=overrides, loaded=loaded), seed)
    batch_size = run.train_config.batch_size
    if mesh is not None and batch_size is not None and batch_size % mesh.size:
        raise SettingError("batch_size", f"{batch_size} does not split evenly over {mesh.size} devices")
    with FolderLock(out) if out is not None and writer else contextlib.nullcontext():  # one writer per folder
        if saved and overwrite and writer:
            clear_out(out)
        if not quiet:
            print(describe(run, loaded), flush=True)
        board, callbacks = open_board(run, out, resume) if tensorboard and writer else (None, [])
        try:
            fit_run(run, out if writer else None, quiet=quiet, resume=resume, mesh=mesh, stop=stop,
                    callbacks=callbacks)
            losses = run.evaluate()
            if board is not None:
                board.log_splits(int(run.state.step), losses)
        finally:
            if board is not None:
                board.close()
        run.info["results"] = {f"{k}_loss": round(v, 6) for k, v in losses.items()}
        if out is not None and writer:
            checkpoint.save(out, run.state, run.metadata())
            if not spec.ability(ClosedForm):
                checkpoint.append_line(os.path.join(out, METRICS), checkpoint.dumps_json(
                    {"step": int(run.state.step), "eval": run.info["results"]}))
    return run
