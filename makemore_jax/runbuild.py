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
from .data import Data, NotWordsError, Vocab, read_data
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
    memory: tuple[int, int]  # (bytes the run needs, estimated; bytes available)


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


def load_data(model: Model, data=None) -> Data:
    """The model's data (`data`, else its kind's bundled file), read by its kind.

    A words file holding running text is refused with the name of a text model to use.
    """
    try:
        return read_data(data, model.kind)
    except NotWordsError as e:
        text_models = models.text_models()
        if not text_models:
            raise
        raise UsageError(str(e).replace("{", "{{").replace("}", "}}") + " (for running text use {model:word})",
                         model=("model", text_models[0])) from None


def prepare(model: str | Model, *, data=None, overrides: dict | None = None, loaded: Data | None = None) -> Prepared:
    """Check `overrides` against the model, load and split the data, check the run fits.

    Raises:
        UsageError, DataError: a bad setting or data file.
    """
    model = get_model(model) if isinstance(model, str) else model
    config_over, train_over = split_overrides(model, dict(overrides or {}))
    loaded = loaded or load_data(model, data)
    vocab = model.kind.vocab(loaded.items)
    config, tc = make_settings(model, loaded.items, vocab, config_over, train_over)
    splits, need = checked_splits(model, config, tc, loaded, vocab)
    return Prepared(model, config, tc, loaded, vocab, splits, need)


def checked_splits(model: Model, config, tc: TrainConfig, loaded: Data, vocab: Vocab) -> tuple[dict, tuple[int, int]]:
    """(the splits, (bytes needed, bytes available)), once the data is known usable and the run known to fit."""
    model.kind.check(loaded.items, config, tc, loaded.source or "<words>")
    splits = build_splits(model, config, loaded.items, vocab)
    X, Y = splits["train"]
    if not model.ability(ClosedForm):
        check_batch_size(tc.batch_size, len(X))
    need, have = memory_need(model, config, tc, (X, Y)), memory.available_bytes()
    if need > have:
        raise UsageError(f"{model.name} needs about {memory.format_bytes(need)} (parameters, optimiser state and "
                         f"one batch's activations), more than the {memory.format_bytes(have)} of memory available")
    return splits, (need, have)


def memory_need(model: Model, config, tc: TrainConfig, arrays) -> int:
    """memory.estimate_bytes at the shapes of one training batch, as the data kind draws it."""
    import jax
    import jax.numpy as jnp
    if tc.batch_size is None:  # the whole split every step
        return memory.estimate_bytes(model, config, tc, *(a.shape for a in arrays))
    shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
    x, y = jax.eval_shape(lambda *a: model.kind.batch(a, jax.random.key(0), jnp.zeros(1, jnp.int32), tc.batch_size,
                                                      config.block_size), *shapes)  # [1, B, ...]
    return memory.estimate_bytes(model, config, tc, x.shape[1:], y.shape[1:])


def memory_line(need_have: tuple[int, int]) -> str:
    need, have = need_have
    return (f"memory: about {memory.format_bytes(need)} needed (parameters, optimiser state, one batch's "
            f"activations), {memory.format_bytes(have)} available")


def data_info(loaded: Data, seed: int, kind=None) -> dict:
    """What a checkpoint records about the data: file, hash, seed, and the kind's own (default: words)."""
    from .kinds import CONTEXT
    return {"data": loaded.source, "data_sha256": loaded.sha256, "seed": seed,
            **(kind or CONTEXT).info(loaded.items)}


def new_run(p: Prepared, seed: int) -> Run:
    import jax

    from .train import create_train_state
    ts = create_train_state(p.model, p.config, p.train_config, jax.random.key(seed))
    return Run(p.model, p.config, p.train_config, p.vocab, p.loaded.items, p.splits, ts,
               info=data_info(p.loaded, seed, p.model.kind), data_sha256=p.loaded.sha256)


def resumed_run(model: Model, out: str, loaded: Data, overrides: dict) -> tuple[Run, tuple[int, int]]:
    """(the run saved in `out`, continued on `loaded` with the training settings in `overrides`; its memory)."""
    from .run import from_checkpoint
    config_over, train_over = split_overrides(model, overrides)
    vocab = model.kind.vocab(loaded.items)
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
    run.splits, need_have = checked_splits(model, run.config, run.train_config, loaded, vocab)
    run.words, run.data_sha256 = loaded.items, loaded.sha256
    run.info.update(data=loaded.source, data_sha256=loaded.sha256)  # the run's own seed stays
    return run, need_have


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
    kind = run.model.kind
    sizes = {name: len(X) for name, (X, _) in run.splits.items()}
    line = (f"{run.model.name}: {sum(x.size for x in jax.tree.leaves(run.state.params)):,} parameters, "
            f"{len(run.words):,} {kind.unit} from {loaded.source or 'Python'}, vocabulary {run.vocab.size}, "
            f"{'/'.join(kind.splits)} {'/'.join(f'{sizes[k]:,}' for k in kind.splits)} examples")
    empty = [name for name in kind.splits if not sizes[name]]
    if empty:
        line += f" ({' and '.join(empty)} empty: too few {kind.unit}; losses on the other splits only)"
    return line


def train(model: str = "mlp", *, data=None, steps: int | None = None, seed: int = 42, out: str | None = None,
          quiet: bool = True, resume: bool = False, overwrite: bool = False, devices: int | None = 1,
          stop=None, tensorboard: bool = False, **overrides) -> Run:
    """run.train_model: build the run (new or resumed), fit it, evaluate it, save it."""
    from . import parallel
    from .fitrun import fit_run
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
    loaded = load_data(spec, data)
    if resume:
        run, need_have = resumed_run(spec, out, loaded, overrides)
    else:
        p = prepare(spec, overrides=overrides, loaded=loaded)
        run, need_have = new_run(p, seed), p.memory
    batch_size = run.train_config.batch_size
    if mesh is not None and batch_size is not None and batch_size % mesh.size:
        raise SettingError("batch_size", f"{batch_size} does not split evenly over {mesh.size} devices")
    with FolderLock(out) if out is not None and writer else contextlib.nullcontext():  # one writer per folder
        if saved and overwrite and writer:
            clear_out(out)
        if not quiet:
            print(describe(run, loaded), memory_line(need_have), sep="\n", flush=True)
        board, callbacks = open_board(run, out, resume) if tensorboard and writer else (None, [])
        try:
            fit_run(run, out if writer else None, quiet=quiet, resume=resume, mesh=mesh, stop=stop,
                    callbacks=callbacks)
            losses = run.evaluate(train=run.train_config.eval_train)
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
