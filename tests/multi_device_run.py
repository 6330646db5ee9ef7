"""Run by tests/test_parallel.py in a fresh process, whose XLA_FLAGS split the CPU into 4 host
devices (the count is fixed when JAX starts, so it cannot be set inside pytest's process).

Trains small runs on 1 device and on several, and prints one JSON object of their numbers;
the test compares them.
"""

import json
import os
import sys

import jax
import numpy as np

from makemore_jax import data, models, parallel, sweep
from makemore_jax.train import TrainConfig, create_train_state, fit, make_optimizer, make_train_chunk, make_train_step

SMALL = {"n_embd": 8, "n_hidden": 16, "n_layer": 1, "n_layers": 1, "n_head": 2}  # whichever fields a model has
# mlp-bn: a context model whose BatchNorm statistics must be the global batch's; gpt (below): running text.
# (mlp and the sequence transformer split their batches the same way: the same step, other shapes.)
DATA_PARALLEL_MODELS = ["mlp-bn"]


def dataset(model, words, vocab, block_size):
    return model.kind.build(words, vocab, block_size)


def small_config(model, vocab, block_size):
    fields = model.config_fields
    overrides = {k: v for k, v in SMALL.items() if k in fields}
    if "block_size" in fields:
        overrides["block_size"] = block_size
    return model.make_config(vocab_size=vocab.size, **overrides)


def losses_of(model, config, ts, X, Y):
    from makemore_jax.evaluate import split_loss
    return split_loss(model.bind(config), ts.params, ts.model_state, X, Y)


def train_alone(model, config, tc, seed, X, Y, mesh=None):
    ts = create_train_state(model, config, tc, jax.random.key(seed))
    ts, summary = fit(model, config, tc, X, Y, ts, mesh=mesh)
    return parallel.local_copy(ts), summary


def leaves(ts):
    return [np.asarray(x).tolist() for x in jax.tree.leaves((ts.params, ts.model_state))]


def main():
    words = data.load_words(data.DEFAULT_DATA)[:600]
    vocab = data.Vocab.from_words(words)
    train_words, dev_words, _ = data.split_words(words)
    out = {"devices": len(jax.devices()), "data_parallel": {}, "sweep": {}}
    tc = TrainConfig(steps=40, batch_size=32, chunk_size=20, lr_decay_step=20)

    mesh = parallel.data_mesh(4)
    for name in DATA_PARALLEL_MODELS:
        model = models.get(name)
        block_size = data.sequence_block_size(words) if model.dataset == "sequence" else 3
        config = small_config(model, vocab, block_size)
        X, Y = dataset(model, train_words, vocab, config.block_size)
        Xd, Yd = dataset(model, dev_words, vocab, config.block_size)
        one, s1 = train_alone(model, config, tc, 0, X, Y)
        four, s4 = train_alone(model, config, tc, 0, X, Y, mesh=mesh)
        out["data_parallel"][name] = {
            "final_loss": [s1["final_loss"], s4["final_loss"]],
            "dev_loss": [losses_of(model, config, one, Xd, Yd), losses_of(model, config, four, Xd, Yd)],
            "leaves": [leaves(one), leaves(four)]}

    # the batch really is split: the compiled chunk all-reduces (the gradients, BatchNorm's statistics)
    model = models.get("mlp-bn")
    config = small_config(model, vocab, 3)
    X, Y = data.build_context_dataset(train_words, vocab, 3)
    Xd, Yd = data.build_context_dataset(dev_words, vocab, 3)
    step = parallel.data_parallel_step(make_train_step(model, config, make_optimizer(tc)), mesh)
    ts = parallel.replicate(create_train_state(model, config, tc, jax.random.key(0)), mesh)
    Xr, Yr = parallel.replicate((X, Y), mesh)
    hlo = make_train_chunk(step, 2, 32).lower(ts, Xr, Yr).compile().as_text()
    out["all_reduce_in_chunk"] = "all-reduce" in hlo

    # a sweep sharded over 2 of the devices: 3 runs and a padding copy, each as if trained alone
    runs = sweep.grid(model, config, tc, {"lr": [0.05, 0.1, 0.2]}, [1])
    result = sweep.train_sweep(model, runs, X, Y, devices=2, quiet=True)
    out["sweep"] = {"devices": result.devices, "runs": []}
    for i, run in enumerate(runs):
        alone, summary = train_alone(model, run.config, run.train_config, run.seed, X, Y)
        swept = sweep.unstack(result.states, i)
        out["sweep"]["runs"].append({"label": run.label, "dev_loss": [losses_of(model, run.config, alone, Xd, Yd),
                                                                      losses_of(model, run.config, swept, Xd, Yd)],
                                     "leaves": [leaves(alone), leaves(swept)]})
    gpt_on_text(out, mesh)
    json.dump(out, sys.stdout)


def gpt_on_text(out, mesh):
    """A tiny gpt on running text: 1 device against 4, and a sweep over 2 devices against runs alone."""
    from makemore_jax import text
    from makemore_jax.evaluate import kind_loss
    model = models.get("gpt")
    with open(data.DEFAULT_TEXT, encoding="utf-8") as f:
        corpus = f.read(3000)
    vocab = data.Vocab.from_text(corpus)
    config = model.make_config(vocab_size=vocab.size, n_layer=1, n_head=2, n_embd=16, block_size=8)
    train_text, val_text = text.split_text(corpus)
    X, Y = text.build_text(train_text, vocab, 8)
    val = text.build_text(val_text, vocab, 8)
    tc = TrainConfig(**{**model.train_defaults, "steps": 6, "warmup_steps": 2, "batch_size": 8, "chunk_size": 3})
    one, s1 = train_alone(model, config, tc, 0, X, Y)
    four, s4 = train_alone(model, config, tc, 0, X, Y, mesh=mesh)
    val_loss = lambda c, ts: kind_loss(model, c, ts.params, ts.model_state, val)  # noqa: E731
    out["data_parallel"]["gpt"] = {"final_loss": [s1["final_loss"], s4["final_loss"]],
                                   "dev_loss": [val_loss(config, one), val_loss(config, four)],
                                   "leaves": [leaves(one), leaves(four)]}
    out["fsdp"] = fsdp_on_text(model, config, tc, X, Y, mesh, val_loss, four, s4)
    runs = sweep.grid(model, config, tc, {"lr": [1e-3, 3e-3]}, [1])
    result = sweep.train_sweep(model, runs, X, Y, devices=2, quiet=True)
    out["gpt_sweep"] = {"devices": result.devices, "runs": []}
    for i, run in enumerate(runs):
        alone, _ = train_alone(model, run.config, run.train_config, run.seed, X, Y)
        swept = sweep.unstack(result.states, i)
        out["gpt_sweep"]["runs"].append({"label": run.label, "dev_loss": [val_loss(run.config, alone),
                                                                          val_loss(run.config, swept)],
                                         "leaves": [leaves(alone), leaves(swept)]})


def fsdp_on_text(model, config, tc, X, Y, mesh, val_loss, four, s4):
    """The same gpt with its parameters and optimiser state split over the 4 devices (--shard fsdp),
    against the replicated run; its state saved after the first chunk and resumed; the memory
    estimates; and a parameter that does not split, refused."""
    import tempfile

    from makemore_jax import checkpoint, lifecycle, loop, memory

    folder = tempfile.mkdtemp()
    save_first = loop.Call(lambda state: int(state.step) == tc.chunk_size and checkpoint.save(
        folder, parallel.local_copy(state), {}))
    ts = create_train_state(model, config, tc, jax.random.key(0))
    sharded, summary = fit(model, config, tc, X, Y, ts, mesh=mesh, shard="fsdp", callbacks=[save_first])
    wte = sharded.params["wte"]
    restored = checkpoint.restore(checkpoint.template_of(lambda: ts), checkpoint.load(folder)[1])
    resumed, _ = fit(model, config, tc, X, Y, restored, mesh=mesh, shard="fsdp")
    sharded, resumed = parallel.local_copy(sharded), parallel.local_copy(resumed)
    opt_leaves = lambda ts: [np.asarray(x).tolist() for x in jax.tree.leaves(ts.opt_state)]  # noqa: E731
    batch = (tc.batch_size, 8)
    estimate = lambda **kw: memory.estimate_bytes(model, config, tc, batch, batch, **kw)  # noqa: E731
    shapes = jax.eval_shape(create_train_state, model, config, tc, jax.random.key(0))
    try:
        lifecycle.prepare("mlp", data=data.load_words(data.DEFAULT_DATA)[:200], overrides={"n_hidden": 8, "steps": 1},
                          mesh=mesh, shard="fsdp")
        refusal = None
    except lifecycle.UsageError as e:
        refusal = e.as_flags()
    return {"final_loss": [s4["final_loss"], summary["final_loss"]],
            "dev_loss": [val_loss(config, four), val_loss(config, sharded)],
            "leaves": [leaves(four), leaves(sharded)],
            "wte": {"shape": list(wte.shape), "shard": list(wte.addressable_shards[0].data.shape)},
            "resumed": {"leaves": [leaves(sharded), leaves(resumed)],
                        "opt_state": [opt_leaves(sharded), opt_leaves(resumed)]},
            "memory": {"one": estimate(), "replicated": estimate(mesh=mesh), "fsdp": estimate(mesh=mesh, shard="fsdp"),
                       "state": memory._nbytes(shapes), "params": memory._nbytes(shapes.params),
                       "one_rows": memory.estimate_bytes(model, config, tc, (tc.batch_size // 4, 8),
                                                         (tc.batch_size // 4, 8))},
            "refusal": refusal}


if __name__ == "__main__":
    assert "xla_force_host_platform_device_count=4" in os.environ.get("XLA_FLAGS", ""), "run by tests/test_parallel.py"
    main()
