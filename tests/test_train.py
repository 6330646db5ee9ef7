"""The engine: determinism, chunking, resume, divergence, optimisers, lr finder, evaluation, sampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import checkpoint, loop, models
from makemore_jax.data import Vocab, build_context_dataset, split_words
from makemore_jax.evaluate import bits, split_loss
from makemore_jax.losses import cross_entropy
from makemore_jax.sample import decode, novelty, sample_ids
from makemore_jax.train import (Diverged, TrainConfig, batch_indices, create_train_state, fit, lr_find,
                                make_optimizer, make_schedule, make_train_chunk, make_train_step)

from conftest import assert_trees_close, json_log

SMALL = {"n_embd": 4, "n_hidden": 32}


@pytest.fixture(scope="module")
def arrays(bundled_words):
    vocab = Vocab.from_words(bundled_words)
    train, dev, _ = split_words(bundled_words)
    return vocab, build_context_dataset(train[:3000], vocab, 3), build_context_dataset(dev[:500], vocab, 3)


def run(model_name, arrays, steps, *, ts=None, seed=0, **train):
    vocab, (X, Y), _ = arrays
    model = models.get(model_name)
    config = model.make_config(vocab_size=vocab.size, **SMALL)
    tc = TrainConfig(**{"steps": steps, "chunk_size": 100, "lr_decay_step": 150, **train})
    ts = ts if ts is not None else create_train_state(model, config, tc, jax.random.key(seed))
    return fit(model, config, tc, X, Y, ts)


def test_same_seed_gives_identical_numbers(arrays):
    a, _ = run("mlp-bn", arrays, 300)
    b, _ = run("mlp-bn", arrays, 300)
    c, _ = run("mlp-bn", arrays, 300, seed=1)
    assert_trees_close(a, b, rtol=0)
    assert not np.array_equal(a.params["C"], c.params["C"])


def run_chunks(model_name, arrays, chunk_sizes):
    """The same 300-step run cut into chunks of the given sizes: (final state, every step's loss)."""
    vocab, (X, Y), _ = arrays
    model = models.get(model_name)
    config = model.make_config(vocab_size=vocab.size, **SMALL)
    tc = TrainConfig(steps=sum(chunk_sizes), lr_decay_step=150)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    train_step = make_train_step(model, config, make_optimizer(tc))
    chunks = {n: make_train_chunk(train_step, n, tc.batch_size) for n in set(chunk_sizes)}
    losses = []
    for n in chunk_sizes:
        ts, chunk_losses = chunks[n](ts, jnp.asarray(X), jnp.asarray(Y))
        losses.append(chunk_losses)
    return ts, np.concatenate(losses)


def test_chunking_does_not_change_the_result(arrays):
    whole, losses = run_chunks("mlp-bn", arrays, [300])
    assert losses.shape == (300,) and len(np.unique(losses)) > 250
    for chunk_sizes in ([1] * 300, [100, 1, 99, 100]):  # one step per dispatch; odd sizes across the lr decay
        other, other_losses = run_chunks("mlp-bn", arrays, chunk_sizes)
        np.testing.assert_array_equal(other_losses, losses)
        assert_trees_close(other, whole, rtol=0)


def test_the_chunk_trains_on_the_rows_batch_indices_draws(arrays):
    vocab, (X, Y), _ = arrays
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, **SMALL)
    ts = create_train_state(model, config, TrainConfig(), jax.random.key(5)).replace(step=jnp.int32(40))

    def spy_step(ts, batch):  # records the batch it is given
        x, y = batch
        return ts.replace(step=ts.step + 1), {"loss": jnp.zeros(()), "x": x, "y": y}

    _, seen = make_train_chunk(spy_step, 6, 8, all_metrics=True)(ts, jnp.asarray(X), jnp.asarray(Y))
    for i, step in enumerate(range(40, 46)):
        rows = np.asarray(jax.random.randint(jax.random.fold_in(ts.key, step), (8,), 0, len(X)))
        np.testing.assert_array_equal(seen["x"][i], X[rows])
        np.testing.assert_array_equal(seen["y"][i], Y[rows])


def test_resume_through_a_checkpoint_is_bit_identical(arrays, tmp_path):
    straight, _ = run("mlp-bn", arrays, 2000, chunk_size=500, lr_decay_step=1000)
    half, _ = run("mlp-bn", arrays, 1000, chunk_size=500, lr_decay_step=1000)
    checkpoint.save(str(tmp_path), half, {"model": "mlp-bn"})
    meta, raw = checkpoint.load(str(tmp_path))
    assert meta["step"] == 1000
    restored = checkpoint.restore(checkpoint.template_of(lambda: half), raw)
    assert_trees_close(restored, half, rtol=0)
    resumed, _ = run("mlp-bn", arrays, 2000, ts=restored, chunk_size=500, lr_decay_step=1000)
    assert_trees_close(resumed, straight, rtol=0)


def test_minibatches_come_from_fold_in_of_the_step():
    key = jax.random.key(3)
    rows = batch_indices(key, jnp.arange(5, 8), 4, 100)
    expected = jax.random.randint(jax.random.fold_in(key, 6), (4,), 0, 100)
    np.testing.assert_array_equal(rows[1], expected)


def test_fit_reports_and_logs(arrays, tmp_path):
    log = tmp_path / "metrics.jsonl"
    vocab, (X, Y), _ = arrays
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, **SMALL)
    tc = TrainConfig(steps=250, chunk_size=100)
    ts0 = create_train_state(model, config, tc, jax.random.key(0))
    seen = []
    ts, summary = fit(model, config, tc, X, Y, ts0, callbacks=[json_log(str(log), tc), loop.Call(lambda t: seen.append(int(t.step)))])
    assert int(ts.step) == 250 and seen == [100, 200, 250] and summary["steps"] == 250
    records = [__import__("json").loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [100, 200, 250]
    assert all(r["lr"] == pytest.approx(0.1) for r in records)
    # the training loss went down from ln(27)
    assert records[-1]["loss"] < math.log(27) - 0.3


def test_divergence_stops_with_the_step_and_keeps_the_last_good_state(arrays):
    with pytest.raises(Diverged, match=r"the loss \S+ is more than 10x the initial 3.\d+ at step \d+") as info:
        run("mlp", arrays, 50, lr=1e36, lr_decay_step=None, chunk_size=1)  # an absurd lr: the loss shoots up
    good = info.value.last_good
    assert f"step {info.value.step}" in str(info.value) and 0 < info.value.step < 50
    assert int(good.step) == info.value.step  # one step per chunk: the state just before the bad step
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(good.params))


def test_a_loss_that_is_not_finite_stops_at_once(arrays):
    vocab, (X, Y), _ = arrays
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, n_hidden=8)
    tc = TrainConfig(steps=4, chunk_size=2)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    broken = ts.replace(params=jax.tree.map(lambda p: p * jnp.nan, ts.params))
    with pytest.raises(Diverged, match="the loss is not finite at step 0") as info:
        fit(model, config, tc, X, Y, broken)
    assert info.value.last_good is broken


def test_sgd_step_decay_schedule():
    schedule = make_schedule(TrainConfig(lr=0.1, lr_decay_step=100_000))
    assert float(schedule(99_999)) == pytest.approx(0.1)
    assert float(schedule(100_000)) == pytest.approx(0.01)


def test_adamw_warmup_cosine_and_clipping(arrays):
    schedule = make_schedule(TrainConfig(optimizer="adamw", lr=1e-3, warmup_steps=100, steps=1000))
    assert float(schedule(0)) == 0.0
    assert float(schedule(100)) == pytest.approx(1e-3)
    assert float(schedule(1000)) == pytest.approx(1e-4)
    ts, summary = run("mlp", arrays, 300, optimizer="adamw", lr=3e-3, warmup_steps=30, clip_norm=1.0)
    assert summary["final_loss"] < math.log(27) - 0.3
    # clipping really bounds the update: one step with a huge lr and clip 1e-3 moves params little
    tx = make_optimizer(TrainConfig(lr=1.0, lr_decay_step=None, clip_norm=1e-3))
    grads = jax.tree.map(jnp.ones_like, ts.params)
    updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(ts.params), ts.params)  # compiled once, not op by op
    norm = math.sqrt(sum(float(jnp.sum(u ** 2)) for u in jax.tree.leaves(updates)))
    assert norm == pytest.approx(1e-3, rel=1e-4)


def test_bad_train_config_values():
    for bad in [{"steps": 0}, {"steps": -5}, {"lr": 0.0}, {"lr": -1.0}, {"batch_size": 0}, {"optimizer": "lion"},
                {"clip_norm": 0.0}, {"chunk_size": 0}]:
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_batch_larger_than_the_data_is_refused(arrays):
    vocab, (X, Y), _ = arrays
    with pytest.raises(ValueError, match="larger than the training split"):
        run("mlp", arrays, 10, batch_size=len(X) + 1)


def test_lr_find_sweeps_the_lecture_range(arrays):
    vocab, (X, Y), _ = arrays
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, **SMALL)
    lrs, losses = lr_find(model, config, X, Y, jax.random.key(0), steps=200)
    np.testing.assert_allclose(lrs, 10 ** np.linspace(-3, 0, 200), rtol=1e-5)
    assert losses.shape == (200,) and np.all(np.isfinite(losses))
    assert losses[-20:].mean() < losses[:20].mean()


def test_split_loss_is_the_exact_mean_in_any_batch_size(arrays):
    vocab, (X, Y), (Xd, Yd) = arrays
    model = models.get("mlp-bn")
    apply = model.bind(model.make_config(vocab_size=vocab.size, **SMALL))
    ts, _ = run("mlp-bn", arrays, 200)
    logits, _ = apply(ts.params, ts.model_state, jnp.asarray(Xd), train=False)
    exact = float(cross_entropy(logits, jnp.asarray(Yd)))
    for batch_size in (len(Xd), 64, 7):  # 7 does not divide the split: padding must be ignored
        assert split_loss(apply, ts.params, ts.model_state, Xd, Yd, batch_size=batch_size) == pytest.approx(
            exact, rel=1e-5)
    assert bits(math.log(2)) == pytest.approx(1.0)


def test_sampling_is_deterministic_and_respects_top_k(arrays):
    vocab, _, _ = arrays
    ts, _ = run("mlp", arrays, 300)
    model = models.get("mlp")
    apply = model.bind(model.make_config(vocab_size=vocab.size, **SMALL))
    kwargs = dict(n=64, block_size=3, max_len=20)
    a = sample_ids(apply, ts.params, ts.model_state, jax.random.key(7), **kwargs)
    b = sample_ids(apply, ts.params, ts.model_state, jax.random.key(7), **kwargs)
    np.testing.assert_array_equal(a, b)
    words = decode(np.asarray(a), vocab)
    assert len(words) == 64 and all(set(w) <= set(vocab.chars[1:]) for w in words)
    # top_k=1 is greedy decoding: every sample is the same argmax chain
    greedy = np.asarray(sample_ids(apply, ts.params, ts.model_state, jax.random.key(1), top_k=1, **kwargs))
    assert (greedy == greedy[0]).all()
    context = jnp.zeros((1, 3), jnp.int32)
    first = int(jnp.argmax(apply(ts.params, ts.model_state, context, train=False)[0][0]))
    assert greedy[0, 0] == first
    assert novelty(["emma", "zzz"], ["emma"]) == 0.5


@pytest.mark.parametrize("model_name", ["mlp", "mlp-deep"])
def test_init_compiled_for_speed_draws_the_default_compiles_numbers(model_name):
    model = models.get(model_name)
    config = model.make_config(vocab_size=27, **SMALL)
    tc, key = TrainConfig(), jax.random.key(3)
    fast = create_train_state(model, config, tc, key)  # INIT_COMPILER_OPTIONS (-O2)
    default = create_train_state.lower(model, config, tc, key).compile(
        compiler_options={"xla_backend_optimization_level": 3})(key)  # XLA's default level
    assert_trees_close(fast.params, default.params, rtol=0)
    assert_trees_close(fast.opt_state, default.opt_state, rtol=0)


# ----------------------------------------------------------------------------- gradient accumulation


def test_grad_accum_equals_one_batch_of_all_its_rows():
    """grad_accum micro-batches give the loss and the gradient of the whole batch at once (float32 tolerance),
    each micro-batch weighted by its counted targets: -1 targets (the padding of words) spread unevenly."""
    model = models.get("gpt")
    config = model.make_config(vocab_size=11, n_layer=1, n_head=2, n_embd=8, block_size=6, dropout=0.0)
    tc = TrainConfig(lr=1.0, lr_decay_step=None)  # sgd: the update is the gradient
    ts = create_train_state(model, config, tc, jax.random.key(0))
    kx, ky, kn = jax.random.split(jax.random.key(1), 3)
    x, y = (jax.random.randint(k, (12, 6), 0, 11) for k in (kx, ky))
    y = jnp.where(jnp.arange(6) > jax.random.randint(kn, (12, 1), 0, 6), -1, y)  # each row ends somewhere
    tx = make_optimizer(tc, model.param_labels)
    updates = []
    for n in (1, 3):
        new, metrics = jax.jit(make_train_step(model, config, tx, grad_accum=n))(ts, (x, y))
        updates.append((metrics["loss"], jax.tree.map(jnp.subtract, ts.params, new.params)))
    (whole_loss, whole), (loss, accumulated) = updates
    counts = jnp.sum(y.reshape(4, 3, 6) != -1, axis=(0, 2))
    assert len(set(counts.tolist())) > 1, counts  # the micro-batches count different targets
    np.testing.assert_allclose(loss, whole_loss, rtol=1e-6)
    assert_trees_close(accumulated, whole, rtol=1e-5, atol=1e-7)  # float32 sums in another order
    assert 0.5 < float(whole_loss) < 5 and float(jnp.abs(whole["wte"]).max()) > 1e-3  # a real loss and gradient


def test_grad_accum_draws_the_rows_of_one_big_batch(arrays):
    """fit with batch B x grad_accum N trains on the rows of batch N B: the same run up to float rounding."""
    big, big_summary = run("mlp", arrays, 20, batch_size=32)
    small, small_summary = run("mlp", arrays, 20, batch_size=8, grad_accum=4)
    assert small_summary["final_loss"] == pytest.approx(big_summary["final_loss"], rel=1e-5)
    assert_trees_close(small.params, big.params, rtol=1e-4, atol=1e-6)


def test_grad_accum_must_be_positive_and_divide_a_full_batch(arrays):
    with pytest.raises(ValueError, match="grad_accum must be at least 1, got 0"):
        TrainConfig(grad_accum=0)
    n = len(arrays[1][0])
    assert n % 7, n  # the fixture's training rows do not split into 7
    with pytest.raises(ValueError, match=rf"grad_accum=7 does not divide the full batch \(batch_size=None: {n:,} rows"):
        run("mlp", arrays, 1, batch_size=None, grad_accum=7)


def test_memory_estimate_counts_one_micro_batch_and_the_gradient_sum():
    from makemore_jax.memory import estimate_bytes
    model = models.get("gpt")
    config = model.make_config(vocab_size=11, n_layer=1, n_head=2, n_embd=8, block_size=16)
    params, _ = jax.eval_shape(lambda key: model.init(key, config), jax.random.key(0))
    param_bytes = 4 * sum(p.size for p in jax.tree.leaves(params))
    estimate = lambda B, n: estimate_bytes(model, config, TrainConfig(batch_size=B, grad_accum=n), (B, 16), (B, 16))
    assert estimate(8, 4) == estimate(8, 1) + param_bytes < estimate(32, 1)
