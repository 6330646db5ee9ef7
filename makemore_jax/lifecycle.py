"""A run's life, in one direction: settings checked -> data read -> new or resumed state -> fit
-> evaluate -> save.

`train_model` (Python, and the `train` command), `sweep_model` (`sweep`), `find_lr`
(`lr-find`) and `diagnose_model` (`diagnose`) all start with `prepare`, so every check is
written once and words its errors by field (settings.UsageError): the batch larger than the
training split, a flag that does not apply to the model, a model too big for the memory, a
checkpoint folder in the way. Fitting runs the engine (train.fit) with callbacks for what a
run does on the way: progress, the metrics.jsonl log, checkpoints by steps and by time,
TensorBoard, and a stop request (SIGTERM). Whether a model is trained by gradients or
fitted in closed form is asked once (`fitting`); the answer is a record whose methods do
the right thing for either.

    from makemore_jax import train_model
    run = train_model("mlp-bn", steps=20_000, lr_decay_step=10_000, out="out/bn")
    run.evaluate(), run.sample(10)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from . import checkpoint, loop, memory, models, parallel
from .data import Data, NotWordsError, Vocab, read_data
from .faults import FolderLock
from .kinds import build_splits
from .models import ClosedForm, Flops, Model
from .optim import TrainConfig
from .run import METRICS, Run, Stopped, Terminated, checkpoint_metadata, from_checkpoint
from .settings import SettingError, UsageError
from .tensorboard import EVENTS_PREFIX
from .tokens import TokenVocab

TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
SAVE_EVERY = 10_000  # steps between checkpoints while training (at least one chunk), and at the end


# ----------------------------------------------------------------------------- settings and data


@dataclasses.dataclass
class Prepared:
    """A run's settings and data, checked, before any state is made."""

    model: Model
    config: object
    train_config: TrainConfig
    loaded: Data
    vocab: Vocab | TokenVocab
    splits: dict
    memory: tuple[int, int]  # (bytes the run needs, estimated; bytes available)


def get_model(name: str | Model) -> Model:
    if isinstance(name, Model):
        return name
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


def make_settings(model: Model, items, vocab, config_over: dict, train_over: dict):
    """(config, TrainConfig) with the model's defaults, then the overrides.

    A run given fewer steps than the model's default warmup (a short try of gpt2's 19,073-step
    recipe) warms up over all its steps, unless the warmup is given too.
    """
    try:
        config = model.make_config(words=items, vocab_size=vocab.size, **config_over)
    except ValueError as e:  # a Config's own check is a SettingError already; anything else worded as it is
        raise e if isinstance(e, UsageError) else UsageError(str(e).replace("{", "{{").replace("}", "}}")) from None
    train = {**model.train_defaults, **train_over}
    if "warmup_steps" not in train_over and "steps" in train_over:
        train["warmup_steps"] = min(train.get("warmup_steps", 0), train["steps"])
    return config, TrainConfig(**train)


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


def check_tokenizer(model: Model, tokenizer) -> None:
    """Refuse a tokenizer setting for a model whose data kind reads words character by character."""
    if tokenizer is not None and not model.kind.tokenizes:
        raise UsageError("{tokenizer:word} applies to running text (" + ", ".join(models.text_models())
                         + "); {model:word} reads words character by character",
                         tokenizer=("tokenizer", tokenizer), model=("model", model.name))


def prepare(model: str | Model, *, data=None, overrides: dict | None = None, loaded: Data | None = None,
            tokenizer=None, mesh=None, shard: str = "none") -> Prepared:
    """Check `overrides` against the model, load and split the data, check the run fits.

    `tokenizer`: a text model's tokenizer setting (tokens.py: "char", "gpt2", a folder, "bpe:N", a
    Tokenizer); None: the model's own default (`Model.tokenizer`; gpt2's "gpt2"), else char.
    `mesh`, `shard`: where the run trains (train_model's devices and shard): the memory is
    checked per device, and fsdp's split of every parameter.

    Raises:
        UsageError, DataError: a bad setting or data file.
    """
    model = get_model(model)
    config_over, train_over = split_overrides(model, dict(overrides or {}))
    check_tokenizer(model, tokenizer)
    loaded = loaded or load_data(model, data)
    vocab = model.kind.vocab(loaded.items, model.tokenizer if tokenizer is None else tokenizer)
    config, tc = make_settings(model, loaded.items, vocab, config_over, train_over)
    splits, need = checked_splits(model, config, tc, loaded, vocab, mesh=mesh, shard=shard)
    return Prepared(model, config, tc, loaded, vocab, splits, need)


def checked_splits(model: Model, config, tc: TrainConfig, loaded: Data, vocab, *, mesh=None,
                   shard: str = "none") -> tuple[dict, tuple[int, int]]:
    """(the splits, (bytes needed, bytes available), per device of `mesh`), once the data is known
    usable and the run known to fit."""
    model.kind.check(loaded.items, vocab, config, tc, loaded.source or "<words>")
    splits = build_splits(model.kind, loaded.items, vocab, config.block_size)
    fitting(model).check(tc, len(splits["train"][0]))
    need = memory_need(model, config, tc, splits["train"], mesh=mesh, shard=shard)
    have = memory.available_per_device(len(mesh.local_devices) if mesh is not None else 1)
    if need > have:
        each = " per device" if mesh is not None else ""
        raise UsageError(f"{model.name} needs about {memory.format_bytes(need)}{each} (parameters, optimiser state "
                         f"and one micro-batch's activations), more than the {memory.format_bytes(have)} of memory "
                         f"available{each}")
    return splits, (need, have)


def memory_need(model: Model, config, tc: TrainConfig, arrays, *, mesh=None, shard: str = "none") -> int:
    """memory.estimate_bytes at the shapes of one training micro-batch, as the data kind draws it (per device
    of `mesh`).

    Raises UsageError for fsdp with a parameter that does not split over the mesh.
    """
    import jax
    import jax.numpy as jnp
    # batch_size None: the whole split every step, in grad_accum micro-batches
    shapes = [(len(a) // tc.grad_accum, *a.shape[1:]) for a in arrays]
    if tc.batch_size is not None:
        structs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
        batch = jax.eval_shape(lambda *a: model.kind.batch(a, jax.random.key(0), jnp.zeros(1, jnp.int32),
                                                           tc.batch_size, config.block_size), *structs)  # [1, B, ...]
        shapes = [b.shape[1:] for b in batch]
    try:
        return memory.estimate_bytes(model, config, tc, *shapes, mesh=mesh, shard=shard)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None


def memory_line(need_have: tuple[int, int], mesh=None, shard: str = "none") -> str:
    need, have = need_have
    if mesh is None:
        return (f"memory: about {memory.format_bytes(need)} needed (parameters, optimiser state, one micro-batch's "
                f"activations), {memory.format_bytes(have)} available")
    state = ("parameters, optimiser state and gradients split over them, plus the parameters gathered whole"
             if shard == "fsdp" else "parameters and optimiser state replicated")
    return (f"memory: about {memory.format_bytes(need)} needed per device of {mesh.size} ({state}; one micro-batch's "
            f"activations at its rows), {memory.format_bytes(have)} available per device")


def data_info(loaded: Data, seed: int, kind) -> dict:
    """What a checkpoint records about the data: file, hash, seed, and the kind's own."""
    return {"data": loaded.source, "data_sha256": loaded.sha256, "seed": seed, **kind.info(loaded.items)}


# ----------------------------------------------------------------------------- new or resumed


def new_run(p: Prepared, seed: int) -> Run:
    import jax

    from .train import create_train_state
    ts = create_train_state(p.model, p.config, p.train_config, jax.random.key(seed))
    return Run(p.model, p.config, p.train_config, p.vocab, p.loaded.items, p.splits, ts,
               info=data_info(p.loaded, seed, p.model.kind), data_sha256=p.loaded.sha256)


def resumed_run(model: Model, out: str, loaded: Data, overrides: dict, tokenizer=None, *, mesh=None,
                shard: str = "none") -> tuple[Run, tuple[int, int]]:
    """(the run saved in `out`, continued on `loaded` with the training settings in `overrides`; its memory).

    A `tokenizer` setting given must make the checkpoint's vocabulary; left out, the checkpoint's is used.
    """
    config_over, train_over = split_overrides(model, overrides)
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
    run = from_checkpoint(out)
    vocab = model.kind.vocab(loaded.items, run.vocab.setting if tokenizer is None else tokenizer)
    if vocab != run.vocab:
        raise vocab_mismatch(run.vocab, vocab, loaded.source or "<words>", out)
    run.train_config = dataclasses.replace(run.train_config, **train_over)
    fitting(model).check_resume(run.train_config, int(run.state.step), out)
    run.splits, need_have = checked_splits(model, run.config, run.train_config, loaded, vocab, mesh=mesh, shard=shard)
    run.words, run.data_sha256 = loaded.items, loaded.sha256
    run.info.update(data=loaded.source, data_sha256=loaded.sha256)  # the run's own seed stays
    return run, need_have


def vocab_mismatch(saved, now, source: str, out: str) -> UsageError:
    """The refusal of a resumed run whose data or tokenizer do not make the checkpoint's vocabulary."""
    if saved.setting == now.setting:  # char: the data's characters differ
        return UsageError(f"{source}: its characters differ from the checkpoint's vocabulary")
    return UsageError(f"{out}: the checkpoint there was trained on {saved.describe()}, not {now.describe()}; leave "
                      "{tokenizer:name} out to continue it, or start over with {overwrite:set}",
                      tokenizer=("tokenizer", None), overwrite=("overwrite", True))


def initialised_run(model: Model, init_from: str, loaded: Data, overrides: dict, *, seed: int,
                    tokenizer=None, mesh=None, shard: str = "none") -> tuple[Run, tuple[int, int]]:
    """(a new run of `model` on `loaded` that starts from the parameters saved in `init_from`; its memory).

    nanoGPT's init_from (fine-tuning a converted GPT-2, or any run): step 0 and a fresh optimiser. The
    model settings are the saved run's, with those in `overrides` that keep its parameters' shapes
    (dropout, dtype; a smaller block_size crops wpe, as nanoGPT's crop_block_size); the training
    settings are the model's defaults and `overrides`'. The vocabulary must be the saved run's: the
    data made into tokens by the saved run's tokenizer, or by `tokenizer` if it names the same one.
    """
    import jax

    from .train import train_state_from
    fitting(model).require_training(model, "parameters to fine-tune")
    source = from_checkpoint(init_from)
    if source.model.name != model.name:
        raise UsageError(f"{init_from}: holds a {source.model.name} run, not a {model.name}; leave {{model:name}} "
                         "out to start from it", model=("model", None))
    config_over, train_over = split_overrides(model, overrides)
    vocab = model.kind.vocab(loaded.items, source.vocab.setting if tokenizer is None else tokenizer)
    if vocab != source.vocab:
        raise init_vocab_mismatch(source.vocab, vocab, loaded.source or "<words>", init_from)
    try:
        config = model.Config(**{**dataclasses.asdict(source.config), **config_over})
    except ValueError as e:  # a Config's own check is a SettingError already
        raise e if isinstance(e, UsageError) else UsageError(str(e).replace("{", "{{").replace("}", "}}")) from None
    tc = TrainConfig(**{**model.train_defaults, **train_over})
    splits, need_have = checked_splits(model, config, tc, loaded, vocab, mesh=mesh, shard=shard)
    params = fitted_params(source.state.params, model, config, init_from)
    ts = train_state_from(model, config, tc, params, jax.random.key(seed))
    info = {**data_info(loaded, seed, model.kind), "init_from": os.path.abspath(init_from)}
    return Run(model, config, tc, vocab, loaded.items, splits, ts, info=info, data_sha256=loaded.sha256), need_have


def init_vocab_mismatch(saved, now, source: str, init_from: str) -> UsageError:
    """The refusal of --init-from a run whose vocabulary the data and tokenizer here do not make."""
    differ = " (other characters)" if saved.describe() == now.describe() else ""
    return UsageError(f"{init_from}: the run there has {saved.describe()}, and {source} makes {now.describe()}"
                      f"{differ} here; fine-tuning keeps the run's vocabulary: leave {{tokenizer:name}} out for its "
                      "own, or give text it covers", tokenizer=("tokenizer", None))


def fitted_params(params: dict, model: Model, config, init_from: str) -> dict:
    """The saved params, checked against the shapes `config` makes; wpe cropped to a smaller block_size."""
    import jax
    want = jax.eval_shape(lambda: model.init(jax.random.key(0), config)[0])
    if isinstance(params, dict) and "wpe" in params and isinstance(want, dict) and "wpe" in want:
        params = {**params, "wpe": params["wpe"][:want["wpe"].shape[0]]}  # rows past the new block_size unused
    def shapes(tree) -> dict:  # {"blocks/0/attn/c_attn/W": shape, ...}: the leaves as a checkpoint names them
        return {name: tuple(leaf.shape) for name, leaf in checkpoint.leaves_by_name(tree).items()}
    saved, wanted = shapes(params), shapes(want)
    for name in sorted(saved.keys() | wanted.keys()):
        if saved.get(name) != wanted.get(name):
            shown = lambda shape: "absent" if shape is None else f"shape {list(shape)}"  # noqa: E731
            raise UsageError(f"{init_from}: its parameters do not fit the model settings given ({name}: "
                             f"{shown(saved.get(name))} there, {shown(wanted.get(name))} here); give only settings "
                             "that keep the shapes, such as --dropout")
    return params


def saved_model(out: str) -> str | None:
    """The model name in `out`'s readable metadata (checkpoint.json), or None: a cheap look before the load."""
    import json
    try:
        with open(os.path.join(out, checkpoint.META), encoding="utf-8") as f:
            return json.load(f).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def check_out(out: str | None, *, resume: bool, overwrite: bool) -> bool:
    """Refuse a folder that cannot be written, or one holding a run neither resumed nor overwritten.

    Returns whether `out` holds a checkpoint.
    """
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


def data_mesh(devices: int | None):
    """parallel.data_mesh, its refusals worded as UsageError."""
    try:
        return parallel.data_mesh(devices)
    except parallel.ParallelError as e:
        raise UsageError(str(e)) from None


def describe(run: Run, loaded: Data) -> str:
    import jax
    kind = run.model.kind
    sizes = {name: len(X) for name, (X, _) in run.splits.items()}
    line = (f"{run.model.name}: {sum(x.size for x in jax.tree.leaves(run.state.params)):,} parameters, "
            f"{kind.amount(run.words)} from {loaded.source or 'Python'}, {run.vocab.describe()}, "
            f"{'/'.join(kind.splits)} {'/'.join(f'{sizes[k]:,}' for k in kind.splits)} examples")
    empty = [name for name in kind.splits if not sizes[name]]
    if empty:
        line += f" ({' and '.join(empty)} empty: too few {kind.unit}; losses on the other splits only)"
    return line


# ----------------------------------------------------------------------------- fitting


class Checkpoints:
    """A loop callback: save the run into `out` every `every` steps, and after the first chunk that
    ends `seconds` after the last save (so a slow model loses little to a crash).

    With the state split over several processes' devices (fsdp), every process gathers it
    (a collective) at the steps process 0 decides; the others pass out=None and write nothing.
    """

    def __init__(self, run: Run, out: str | None, every: int, seconds: float):
        self.run, self.out, self.every, self.seconds = run, out, every, seconds
        self.saved_at = time.monotonic()

    def on_chunk(self, state, step: int, losses, elapsed):
        due = time.monotonic() - self.saved_at >= self.seconds and step < self.run.train_config.steps
        if parallel.spans_processes(state):
            due = parallel.agreed(due)  # the clocks differ; the gather must happen on every process alike
        if step % self.every == 0 or due:
            whole = parallel.local_copy(state)
            if self.out is not None:
                checkpoint.save(self.out, whole, self.run.metadata())
            self.saved_at = time.monotonic()


def progress(tc: TrainConfig, start: int, *, quiet: bool, speed=None) -> loop.Progress:
    """The training progress callback: a bar on a terminal, else a line at every tenth of the run
    (with tokens/s and MFU given the run's throughput.Throughput, `speed`)."""
    return loop.Progress(tc.steps, start, quiet=quiet, line=ProgressLine(tc.steps, start, speed))


class ProgressLine:
    """The plain progress line: the step, the chunk's mean loss, and the rate since the line before (the
    first line's since the start, its compile included), with tokens/s and MFU given a Throughput."""

    def __init__(self, total: int, start: int, speed=None):
        self.total, self.step, self.elapsed, self.speed = total, start, 0.0, speed

    def __call__(self, step: int, losses, elapsed: float) -> str:
        from .throughput import rate
        steps, seconds = step - self.step, elapsed - self.elapsed
        self.step, self.elapsed = step, elapsed
        line = f"step {step:,}/{self.total:,}  loss {losses.mean():.4f}  {rate(steps, seconds)}"
        return line + (f"  {self.speed.line(steps, seconds)}" if self.speed is not None else "")


def throughput(run: Run, mesh=None):
    """The run's throughput.Throughput (tokens a step, FLOPs a token, the devices' peak), or None for a
    model without the Flops ability; on the mesh's devices, else the default device."""
    import jax

    from . import throughput as speed
    from .train import step_rows
    flops = run.model.ability(Flops)
    if flops is None:
        return None
    devices = list(mesh.devices.flat) if mesh is not None else jax.devices()[:1]
    rows = step_rows(run.train_config) or len(run.splits["train"][0])
    return speed.of_run(flops.per_token(run.config), rows * run.config.block_size, flops.dtype(run.config), devices)


class GradientFit:
    """How a model trained by gradients is fitted: the engine's fit, with the run's callbacks."""

    trains = True

    def check(self, tc: TrainConfig, n_train: int) -> None:
        from .train import check_batch_size, check_grad_accum
        check_batch_size(tc.batch_size, n_train)
        check_grad_accum(tc, n_train)

    def check_resume(self, tc: TrainConfig, at: int, out: str) -> None:
        if tc.steps <= at:
            raise SettingError("steps", f"{tc.steps:,}: the run in {out} is at step {at:,} already; to "
                                        f"train it further, give a number above {at}")

    def require_training(self, model: Model, what: str) -> None:
        pass

    def fit(self, run: Run, out: str | None, *, quiet: bool, resume: bool, mesh=None, shard: str = "none",
            stop=None, board=None, gathers: bool = False) -> None:
        """Train run.state in place, checkpointing into `out`, data parallel over `mesh` (state placed by `shard`).

        Once `stop` (a threading.Event) is set the chunk being read is the last: its state is
        saved and Terminated raised. A divergence raises Stopped with the last good state saved.
        `gathers`: a process that does not write (out None) of a run that does: it joins the
        checkpoints' gathers of a state split over the processes (Checkpoints).
        """
        import jax

        from .optim import make_schedule
        from .train import Diverged, fit
        tc, start = run.train_config, int(run.state.step)
        schedule = jax.jit(make_schedule(tc))  # one small compile, not one per eager op of the schedule
        speed = throughput(run, mesh)
        callbacks = [progress(tc, start, quiet=quiet, speed=speed)]
        if out is not None:
            os.makedirs(out, exist_ok=True)
            cut_log(os.path.join(out, METRICS), start if resume else 0)
            callbacks += [loop.JsonLog(os.path.join(out, METRICS), schedule),
                          Checkpoints(run, out, max(tc.chunk_size, SAVE_EVERY), tc.save_every_seconds)]
        elif gathers and shard == "fsdp":
            callbacks.append(Checkpoints(run, None, max(tc.chunk_size, SAVE_EVERY), tc.save_every_seconds))
        if board is not None:
            from .tensorboard import LossCallback
            callbacks.append(LossCallback([board], [schedule]))
        if stop is not None:
            callbacks.append(loop.StopWhen(stop))
        try:
            state, run.summary = fit(run.model, run.config, tc, *run.splits["train"], run.state, callbacks=callbacks,
                                     mesh=mesh, shard=shard)
        except Diverged as e:
            run.state = parallel.local_copy(e.last_good)
            where = f" in {save(run, out)}" if out is not None else ""
            raise Stopped(f"{e}; kept the last good state (step {int(run.state.step):,}){where}", run) from None
        run.state = parallel.local_copy(state)
        if speed is not None:  # tokens/s and MFU once compiled
            summary = run.summary
            summary.update(speed.figures(summary["steps"], summary["seconds"] - summary["compile_seconds"]))
        if int(run.state.step) < tc.steps:  # stopped early: save where it stands
            where = (f"the state is saved in {save(run, out)}; continue with --resume" if out is not None
                     else "nothing saved (no --out)")
            raise Terminated(f"terminated at step {int(run.state.step):,} of {tc.steps:,} (SIGTERM); {where}", run)

    def done(self, summary: dict, now_at: str) -> str:
        """"trained N steps in S s (rate, compile C s)", with the step time, tokens/s and MFU after compiling
        where the summary has them (a model with the Flops ability)."""
        from .throughput import describe, rate
        steps, seconds, compile_s = summary["steps"], summary["seconds"], summary["compile_seconds"]
        after = (f"; after compiling {rate(steps, seconds - compile_s)}, {describe(summary)}"
                 if "tokens_per_s" in summary else "")
        return (f"trained {steps:,} steps{now_at} in {seconds:.1f} s ({rate(steps, seconds)}, compile "
                f"{compile_s:.1f} s{after})")

    def log_results(self, out: str, run: Run) -> None:
        checkpoint.append_line(os.path.join(out, METRICS), checkpoint.dumps_json(
            {"step": int(run.state.step), "eval": run.info["results"]}))


@dataclasses.dataclass(frozen=True)
class ClosedFormFit:
    """How a model with a closed form is fitted: once, from the whole training split; nothing to train."""

    record: ClosedForm
    trains = False

    def check(self, tc: TrainConfig, n_train: int) -> None:
        pass  # no batches, no steps

    def check_resume(self, tc: TrainConfig, at: int, out: str) -> None:
        pass

    def require_training(self, model: Model, what: str) -> None:
        raise UsageError(f"--model {model.name} is fitted in closed form: it has no {what}")

    def fit(self, run: Run, out: str | None, **_) -> None:
        run.state = run.state.replace(params=self.record.fit(run.config, *run.splits["train"]))
        run.summary = {"steps": 0, "seconds": 0.0, "compile_seconds": 0.0, "final_loss": math.nan}

    def done(self, summary: dict, now_at: str) -> str:
        return "fitted in closed form"

    def log_results(self, out: str, run: Run) -> None:
        pass  # no training log


def fitting(model: Model) -> GradientFit | ClosedFormFit:
    """How `model` is fitted: the one place that asks whether it has a closed form."""
    record = model.ability(ClosedForm)
    return ClosedFormFit(record) if record else GradientFit()


def save(run: Run, out: str) -> str:
    """run's checkpoint, written atomically into `out`; its path."""
    return checkpoint.save(out, run.state, run.metadata())


def cut_log(path: str, step: int) -> None:
    """Keep only the metrics.jsonl lines up to `step` (an interrupted run may have logged past its checkpoint)."""
    import json
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


# ----------------------------------------------------------------------------- train


def placement(devices: int | None, shard: str):
    """The data parallel mesh of `devices` (parallel.data_mesh), once `shard` is known to be one of parallel.SHARDS."""
    if shard not in parallel.SHARDS:
        raise UsageError(f"{{shard:word}}: expected one of {', '.join(parallel.SHARDS)}", shard=("shard", shard))
    return data_mesh(devices)


def train_model(model: str = "mlp", *, data=None, steps: int | None = None, seed: int = 42, out: str | None = None,
                quiet: bool = True, resume: bool = False, overwrite: bool = False, devices: int | None = 1,
                shard: str = "none", stop=None, tensorboard: bool = False, tokenizer=None,
                init_from: str | None = None, **overrides) -> Run:
    """Train a registered model and evaluate it on every split.

    Args:
        model: a registry name ("bigram", "bigram-nn", "mlp", "mlp-bn", "mlp-deep", ...).
        data: a text file (one word per line, or running text for a text model), or a list
            of words (default: the model's bundled data).
        steps: training steps (default: the model's, e.g. 200,000 for the MLPs).
        seed: initialisation and minibatch seed (a resumed run keeps its own).
        out: a folder to checkpoint into (every SAVE_EVERY steps, at the end) with metrics.jsonl.
        quiet: no progress output. overwrite: replace a run already saved in `out` (else refused).
        resume: continue the run saved in `out` (its settings; training settings may change).
        devices: data parallel over this many devices, None for all (parallel.data_mesh); in a
            multi-process run (parallel.initialize first) only process 0 prints and writes `out`.
        shard: "none" (the state replicated on every device) or "fsdp" (split over them,
            parallel.state_shardings); checkpoints hold the whole state either way.
        stop: a threading.Event; once set (e.g. on SIGTERM) the chunk in flight is the last,
            its state is saved in `out` and Terminated raised.
        tensorboard: also write metrics.jsonl's losses as TensorBoard events into `out` (an extra).
        tokenizer: a text model's tokens (tokens.py): "char" (the default but for gpt2's, "gpt2"),
            "gpt2", a `makemore-jax tokenizer train` folder or .model file, "bpe:N", a Tokenizer;
            a resumed run keeps its own unless this names it. A words model refuses one.
        init_from: a run folder (`train`'s or `convert --from-hf`'s) whose parameters and model
            settings start this one, with a fresh optimiser at step 0 (fine-tuning; initialised_run).
        **overrides: any model config field (n_hidden=64, init="unit") or TrainConfig
            field (lr=0.05, batch_size=None, optimizer="adamw").
    Returns:
        the trained Run: run.summary (steps, seconds, compile_seconds, final_loss), run.info["results"].
    Raises:
        UsageError, DataError, CheckpointError: a bad setting, data file or checkpoint, or a model
            too big for the memory (before anything is allocated).
        ImportError: tensorboard=True without tensorboardX (before anything is trained).
        Stopped: training diverged; `.run` holds the last good state, also saved in `out`.
            Terminated (a Stopped): `stop` was set.
    """
    spec = get_model(model)
    split_overrides(spec, overrides)
    check_tokenizer(spec, tokenizer)
    mesh = placement(devices, shard)
    writer = parallel.is_writer()  # only process 0 of a multi-process run prints and writes
    out_here, quiet = (out, quiet) if writer else (None, True)
    if steps is not None:
        overrides["steps"] = steps
    check_init_from(init_from, out, resume=resume)
    saved = check_out(out, resume=resume, overwrite=overwrite)
    check_tensorboard(tensorboard, out)
    loaded = load_data(spec, data)
    run, need_have = built_run(spec, loaded, overrides, out=out if resume else None, seed=seed, mesh=mesh,
                               shard=shard, tokenizer=tokenizer, init_from=init_from)
    with FolderLock(out_here) if out_here is not None else contextlib.nullcontext():  # one writer per folder
        if saved and overwrite and out_here is not None:
            clear_out(out_here)
        if not quiet:
            print(describe(run, loaded), memory_line(need_have, mesh, shard), sep="\n", flush=True)
        fit_and_evaluate(run, out_here, quiet=quiet, resume=resume, mesh=mesh, shard=shard, stop=stop,
                         tensorboard=tensorboard and writer, gathers=out is not None)
    return run


def check_init_from(init_from: str | None, out: str | None, *, resume: bool) -> None:
    """Refuse init_from with resume (a new run against the one in `out` continued), or naming `out` itself."""
    if init_from is None:
        return
    if resume:
        raise UsageError("{init_from:word} starts a new run from another's parameters and {resume:set} continues "
                         "the one in {out:name}: give one of them", init_from=("init_from", init_from),
                         resume=("resume", True), out=("out", None))
    if out is not None and os.path.abspath(out) == os.path.abspath(init_from):
        raise UsageError(f"{init_from}: {{init_from:name}} and {{out:name}} name the same folder; write the new run "
                         "elsewhere, or continue this one with {resume:set}", init_from=("init_from", None),
                         out=("out", None), resume=("resume", True))


def built_run(model: Model, loaded: Data, overrides: dict, *, out: str | None, seed: int, mesh=None,
              shard: str = "none", tokenizer=None, init_from: str | None = None):
    """(a new run, with `out` the one saved there resumed, or with `init_from` one started from that run's
    parameters; its memory need), checked against `mesh` and `shard`."""
    if out is not None:
        run, need_have = resumed_run(model, out, loaded, overrides, tokenizer, mesh=mesh, shard=shard)
    elif init_from is not None:
        run, need_have = initialised_run(model, init_from, loaded, overrides, seed=seed, tokenizer=tokenizer,
                                         mesh=mesh, shard=shard)
    else:
        p = prepare(model, overrides=overrides, loaded=loaded, tokenizer=tokenizer, mesh=mesh, shard=shard)
        run, need_have = new_run(p, seed), p.memory
    batch_size = run.train_config.batch_size
    if mesh is not None and batch_size is not None and batch_size % mesh.size:
        raise SettingError("batch_size", f"{batch_size} does not split evenly over {mesh.size} devices")
    return run, need_have


def fit_and_evaluate(run: Run, out: str | None, *, quiet: bool, resume: bool, mesh=None, shard: str = "none",
                     stop=None, tensorboard: bool = False, gathers: bool = False) -> None:
    """Fit `run` in place, evaluate it into run.info["results"], and save it (and its results line) into `out`.

    `gathers`: the run has a folder that another process writes (GradientFit.fit).
    """
    fitter = fitting(run.model)
    board = open_board(run, out, resume) if tensorboard else None
    evaluation = compile_evaluation_ahead(run) if fitter.trains and mesh is None else None
    try:
        fitter.fit(run, out, quiet=quiet, resume=resume, mesh=mesh, shard=shard, stop=stop,
                   board=board if fitter.trains else None, gathers=gathers)
        if evaluation is not None:
            evaluation.result()  # compiled by now, or it raises what evaluate would
        losses = run.evaluate(train=run.train_config.eval_train)
        if board is not None:
            board.log_splits(int(run.state.step), losses)
    finally:
        if board is not None:
            board.close()
    run.info["results"] = {f"{k}_loss": round(v, 6) for k, v in losses.items()}
    if out is not None:
        save(run, out)
        fitter.log_results(out, run)


def compile_evaluation_ahead(run: Run) -> concurrent.futures.Future:
    """Compile the run's final evaluation in a thread while training compiles and runs (Run.compile_evaluation).

    XLA compiles a program on one core, so while the main thread compiles the training chunk
    the other core compiles the evaluation's: the evaluation at the end starts at once.
    """
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile-evaluation")
    evaluation = pool.submit(run.compile_evaluation, train=run.train_config.eval_train)
    pool.shutdown(wait=False)  # the thread ends with its one task
    return evaluation


def open_board(run: Run, out: str, resume: bool):
    """The TensorBoard writer on `out` for `run`; a resumed run hides the events logged past its
    checkpoint (as cut_log does metrics.jsonl's)."""
    from .tensorboard import open_writer
    return open_writer(out, purge_step=int(run.state.step) + 1 if resume else None)


# ----------------------------------------------------------------------------- sweep


@dataclasses.dataclass
class SweepOutcome:
    """What `sweep_model` trained and wrote: the runs, their result, split losses and files."""

    prepared: Prepared
    runs: list
    result: object  # sweep.SweepResult
    losses: list[dict]
    select: str  # the split runs are chosen on
    written: list[str]
    kept: int  # checkpoints saved under OUT/runs


def sweep_model(model: str, *, data=None, seeds: Sequence[int] = (42,), out: str, devices: int | None = None,
                quiet: bool = False, keep: bool = False, tensorboard: bool = False, **settings) -> SweepOutcome:
    """Train every combination of the list-valued `settings` (and each seed) at once (sweep.py), then
    evaluate each run, write the report (and with `keep` each run's checkpoint) into `out`.

    Raises:
        UsageError, DataError: a bad setting or data file, or a model with nothing to train.
    """
    from . import sweep
    spec = get_model(model)
    fitting(spec).require_training(spec, "training to sweep")
    if tensorboard:
        from .tensorboard import require
        require()  # before any work: one line and status 2 without tensorboardX
    swept = {k: v for k, v in settings.items() if isinstance(v, list) and len(v) > 1}
    single = {k: v[0] if isinstance(v, list) else v for k, v in settings.items() if k not in swept}
    p = prepare(spec, data=data, overrides=single)
    try:
        runs = sweep.grid(spec, p.config, p.train_config, swept, seeds)
    except ValueError as e:
        raise e if isinstance(e, UsageError) else UsageError(str(e)) from None
    if not quiet:
        print(f"sweep: {len(runs)} runs of {spec.name} ({', '.join(f'{k} x{len(v)}' for k, v in swept.items())}"
              f"{', ' if swept else ''}seed x{len(seeds)}), {p.train_config.steps:,} steps each", flush=True)
    with FolderLock(out):  # one writer per folder
        return _sweep_and_save(p, runs, out, devices=devices, quiet=quiet, keep=keep, tensorboard=tensorboard)


def _sweep_and_save(p: Prepared, runs, out: str, *, devices, quiet: bool, keep: bool, tensorboard: bool):
    from . import sweep
    from .evaluate import kind_loss
    model, tc = p.model, p.train_config
    boards = None
    if tensorboard:
        from .tensorboard import SweepBoards
        boards = SweepBoards(out, runs, tc)
    result = sweep.train_sweep(model, runs, *p.splits["train"], devices=devices, quiet=quiet,
                               callbacks=[boards] if boards else [])
    os.makedirs(out, exist_ok=True)
    select = model.kind.splits[1]  # dev (text: val)
    losses, kept = [], 0
    for i, run in enumerate(runs):
        ts = sweep.unstack(result.states, i)
        run_losses = ({name: kind_loss(model, run.config, ts.params, ts.model_state, a)
                       for name, a in p.splits.items() if len(a[0])}
                      if result.diverged[i] is None else {"train": math.nan, select: math.nan})
        losses.append(run_losses)
        if keep and result.diverged[i] is None:
            info = {**data_info(p.loaded, run.seed, model.kind),
                    "results": {f"{k}_loss": round(v, 6) for k, v in run_losses.items()}}
            checkpoint.save(os.path.join(out, "runs", run.dirname), ts,
                            checkpoint_metadata(model, run.config, run.train_config, p.vocab, info))
            kept += 1
    written = sweep.write_report(out, result, losses, title=f"sweep of {model.name}, {tc.steps:,} steps",
                                 select=select)
    if boards:
        written.append(boards.finish(tc.steps, losses))
    return SweepOutcome(p, runs, result, losses, select, written, kept)


# ----------------------------------------------------------------------------- lr-find and diagnose


def find_lr(model: str, *, data=None, steps: int = 1000, batch_size: int = 32, seed: int = 42, out: str):
    """Lecture 2's learning-rate sweep (train.lr_find) on the model's training split; writes
    OUT/lr_find.json (and lr_find.png with matplotlib).

    Returns:
        (lrs [steps], losses [steps], the lr of the lowest smoothed loss, the paths written).
    """
    import jax

    from .train import lr_find
    spec = get_model(model)
    fitting(spec).require_training(spec, "learning rate")
    p = prepare(spec, data=data, overrides={"batch_size": batch_size})
    lrs, losses = lr_find(spec, p.config, *p.splits["train"], jax.random.key(seed), batch_size=batch_size, steps=steps)
    smooth = np.convolve(losses, np.ones(25) / 25, mode="same") if len(losses) > 50 else losses
    best = float(lrs[int(np.nanargmin(smooth))])
    path = os.path.join(out, "lr_find.json")
    checkpoint.atomic_write(path, checkpoint.dumps_json({"lr": lrs.tolist(), "loss": losses.tolist()}).encode())
    written = [path]
    try:
        from .plots import plot_lr_find
        written.append(plot_lr_find(lrs, losses, os.path.join(out, "lr_find.png")))
    except ImportError:
        pass
    return lrs, losses, best, written


@dataclasses.dataclass
class Diagnosis:
    """What `diagnose_model` found: the state it looked at, the table, and the files written."""

    prepared: Prepared
    step: int
    loss: float
    table: list[dict]
    written: list[str]
    diverged: str | None  # the divergence message, when training diverged (the last good state is diagnosed)
    figures: bool  # whether the figures were drawn (they need matplotlib)


def diagnose_model(model: str, *, data=None, steps: int = 1000, every: int = 10, batch_size: int = 32,
                   lr: float = 0.1, seed: int = 42, out: str, quiet: bool = False, describe: str = "",
                   **overrides) -> Diagnosis:
    """Lecture 3's statistics: train `steps` steps collecting update ratios every `every`, then
    the activations and gradients of the next minibatch; writes OUT/diagnostics.json and (with
    matplotlib) the figures. `describe`: added to the progress line's description of the model."""
    import jax

    from . import diagnostics
    from .train import Diverged, batch_indices, create_train_state, fit
    p = prepare(model, data=data, overrides={**overrides, "steps": max(steps, 1), "batch_size": batch_size, "lr": lr})
    model, config, tc = p.model, p.config, p.train_config
    Xtr, Ytr = p.splits["train"]
    ts = create_train_state(model, config, tc, jax.random.key(seed))
    updates, diverged = None, None
    if steps:
        if not quiet:
            print(f"training {model.name} ({config.init} init{describe}) for {steps} steps, update ratios every "
                  f"{every}", flush=True)
        try:
            ts, summary = fit(model, config, tc, Xtr, Ytr, ts, callbacks=[progress(tc, 0, quiet=quiet)],
                              metrics_fn=diagnostics.update_ratios, metrics_every=every)
            updates = summary["metrics"]
        except Diverged as e:
            diverged, ts = f"{e}; diagnosing the last good state (step {int(e.last_good.step)})", e.last_good
    rows = jax.device_get(batch_indices(ts.key, ts.step[None], batch_size, len(Xtr))[0])  # the next step's batch
    snap = diagnostics.snapshot(ts.params, ts.model_state, Xtr[rows], Ytr[rows])
    table = diagnostics.table_rows(ts.params, snap, updates)
    report = {"model": model.name, "config": dataclasses.asdict(config), "step": int(ts.step),
              "loss": float(snap.loss), "rows": table, "updates": {k: v.tolist() for k, v in (updates or {}).items()}}
    written = [os.path.join(out, "diagnostics.json")]
    checkpoint.atomic_write(written[0], checkpoint.dumps_json(report).encode())
    try:
        from .plots import plot_diagnostics
    except ImportError as e:
        if getattr(e, "name", None) != "matplotlib":
            raise
        return Diagnosis(p, int(ts.step), float(snap.loss), table, written, diverged, figures=False)
    written += plot_diagnostics(jax.device_get(snap.acts), jax.device_get(snap.act_grads), updates, out)
    return Diagnosis(p, int(ts.step), float(snap.loss), table, written, diverged, figures=True)
