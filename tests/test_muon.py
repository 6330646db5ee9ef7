"""optimizer="muon" and schedule="wsd": Muon's update against the SVD of the gradient through
the quintic Newton-Schulz map (numpy, float64), the parameter groups on real transformer
trees, AdamW's leaves against AdamW alone, the WSD schedule against its closed form in both
groups, and training, a bit-identical resume, the sweep and the flags with muon."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax import checkpoint, data, models, sweep, text
from makemore_jax.cli import build_parser, main
from makemore_jax.optim import (ADAMW, MUON, TrainConfig, decay_steps, make_optimizer, make_schedule,
                                param_groups)
from makemore_jax.train import create_train_state, fit, make_train_chunk, make_train_step

from conftest import assert_trees_close

GPT = models.get("gpt")
LABELS = GPT.param_labels  # the transformer family's, declared by the model
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8}
QUINTIC = (3.4445, -4.7750, 2.0315)  # Muon's Newton-Schulz coefficients: x -> a x + b x^3 + c x^5, 5 times


def quintic(x, steps=5):
    a, b, c = QUINTIC
    for _ in range(steps):
        x = a * x + b * x ** 3 + c * x ** 5
    return x


def newton_schulz_reference(g, steps=5):
    """What `steps` quintic steps on g / |g|_F make of g = U S V^T: U quintic(S / |g|_F) V^T (float64),
    and the band the quintic maps [smallest S / |g|_F, 1] into."""
    g = np.asarray(g, np.float64)
    u, s, vt = np.linalg.svd(g, full_matrices=False)
    x = s / np.linalg.norm(g)
    image = quintic(np.linspace(x.min(), 1.0, 200_001), steps)
    return u @ np.diag(quintic(x, steps)) @ vt, (image.min(), image.max())


def tiny_params(name="gpt", **over):
    model = models.get(name)
    config = model.make_config(vocab_size=11, **{**TINY, **over})
    return model.init(jax.random.key(0), config)[0]


def random_like(params, seed=1):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def first_update(tc, params, grads, labels=LABELS):
    tx = make_optimizer(tc, labels)
    return jax.jit(tx.update)(grads, tx.init(params), params)[0]  # one compile, not hundreds of eager ops


# ----------------------------------------------------------------------------- the Muon update


def assert_near_orthogonal(direction, g):
    """direction is g orthogonalised: U quintic5(S) V^T, singular values in the quintic's band, and
    direction direction^T (the smaller Gram matrix) within that band's squares of I."""
    reference, (lo, hi) = newton_schulz_reference(g)
    np.testing.assert_allclose(direction, reference, atol=1e-5)
    assert 0.6 < lo and hi < 1.21  # the band: near-orthogonal, not orthogonal (the quintic's steepness at 0)
    s = np.linalg.svd(direction, compute_uv=False)
    assert lo - 1e-5 <= s.min() and s.max() <= hi + 1e-5, (s, lo, hi)
    d = direction if direction.shape[0] <= direction.shape[1] else direction.T
    gap = np.linalg.norm(d @ d.T - np.eye(d.shape[0]), ord=2)
    assert gap <= max(hi ** 2 - 1, 1 - lo ** 2) + 1e-4


def test_muon_update_of_each_matrix_is_the_orthogonalised_gradient():
    params = tiny_params()
    grads = random_like(params)
    lr = 0.5
    updates = first_update(TrainConfig(optimizer="muon", steps=10, matrix_lr=lr, weight_decay=0.0), params, grads)
    block, g = updates["blocks"][0], grads["blocks"][0]
    C = params["wte"].shape[1]
    # the first step's Nesterov momentum is a multiple of the gradient; width scaling sqrt(max(1, out / in))
    for (layer, part), width in [(("mlp", "c_fc"), 2.0), (("mlp", "c_proj"), 1.0), (("attn", "c_proj"), 1.0)]:
        direction = np.asarray(block[layer][part]["W"]) / (-lr * width)
        assert_near_orthogonal(direction, g[layer][part]["W"])
    # c_attn W [C, 3, H, D]: q's, k's and v's [C, C] matrices each orthogonalised alone
    W, G = np.asarray(block["attn"]["c_attn"]["W"]) / -lr, np.asarray(g["attn"]["c_attn"]["W"])
    for j in range(3):
        assert_near_orthogonal(W[:, j].reshape(C, -1), G[:, j].reshape(C, -1))
    whole, _ = newton_schulz_reference(G.reshape(C, -1))  # not the [C, 3C] matrix orthogonalised as one
    assert np.abs(W.reshape(C, -1) - whole).max() > 0.1


def test_muon_ns_steps_sets_the_newton_schulz_iterations():
    params = tiny_params()
    grads = random_like(params)
    tc = TrainConfig(optimizer="muon", steps=10, matrix_lr=1.0, weight_decay=0.0, muon_ns_steps=2)
    direction = -np.asarray(first_update(tc, params, grads)["blocks"][0]["attn"]["c_proj"]["W"])
    g = grads["blocks"][0]["attn"]["c_proj"]["W"]
    np.testing.assert_allclose(direction, newton_schulz_reference(g, steps=2)[0], atol=1e-5)
    assert np.abs(direction - newton_schulz_reference(g)[0]).max() > 0.05  # two steps are not five


def test_adamw_group_is_adamw_alone_and_a_model_without_blocks_is_all_adamw():
    params = tiny_params("transformer")  # every kind of leaf: biases, betas, an lm_head
    grads = random_like(params)
    tc = TrainConfig(optimizer="muon", steps=10, lr=1e-2, weight_decay=0.1, decay="matrices")
    muon, adamw = (first_update(t, params, grads) for t in (tc, dataclasses.replace(tc, optimizer="adamw")))
    labels = jax.tree.leaves(param_groups(params, LABELS))
    assert labels.count(ADAMW) == 13 and labels.count(MUON) == 4
    for label, u, v in zip(labels, jax.tree.leaves(muon), jax.tree.leaves(adamw)):
        if label == ADAMW:
            np.testing.assert_array_equal(u, v)
        else:
            assert np.abs(np.asarray(u) - np.asarray(v)).max() > 1e-3
    mlp = models.get("mlp")
    params = mlp.init(jax.random.key(0), mlp.make_config(n_hidden=16))[0]
    assert set(jax.tree.leaves(param_groups(params, mlp.param_labels))) == {ADAMW}
    grads = random_like(params)
    tc = TrainConfig(optimizer="muon", steps=10, lr=1e-2)
    assert_trees_close(first_update(tc, params, grads, mlp.param_labels),
                       first_update(dataclasses.replace(tc, optimizer="adamw"), params, grads, mlp.param_labels), rtol=0)


def leaf_labels(params):
    return {jax.tree_util.keystr(path): label
            for path, label in jax.tree_util.tree_flatten_with_path(param_groups(params, LABELS))[0]}


def test_param_groups_on_gpt_and_transformer_trees():
    gpt = leaf_labels(tiny_params("gpt", n_layer=2))  # tied head, no biases
    matrices = [f"['blocks'][{i}]{m}['W']" for i in range(2)
                for m in ("['attn']['c_attn']", "['attn']['c_proj']", "['mlp']['c_fc']", "['mlp']['c_proj']")]
    assert sorted(k for k, v in gpt.items() if v == MUON) == sorted(matrices)
    assert {k for k, v in gpt.items() if v == ADAMW} == {
        "['wte']", "['wpe']", "['ln_f']['gamma']", *(f"['blocks'][{i}]['{ln}']['gamma']" for i in range(2)
                                                     for ln in ("ln_1", "ln_2"))}
    makemore = leaf_labels(tiny_params("transformer"))  # biases, betas and its own lm_head
    assert sorted(k for k, v in makemore.items() if v == MUON) == sorted(m for m in matrices if "[0]" in m)
    for name in ("['lm_head']['W']", "['wte']", "['wpe']", "['ln_f']['beta']", "['blocks'][0]['attn']['c_attn']['b']",
                 "['blocks'][0]['mlp']['c_fc']['b']", "['blocks'][0]['ln_1']['beta']"):
        assert makemore[name] == ADAMW, name


# ----------------------------------------------------------------------------- the WSD schedule


def wsd_closed_form(t, peak, warmup, steps, decay, end):
    if t < warmup:
        return peak * t / warmup
    start = steps - decay
    return peak if t <= start else peak + (end - peak) * min(t - start, decay) / decay


def test_wsd_schedule_is_its_closed_form():
    tc = TrainConfig(optimizer="adamw", schedule="wsd", lr=1e-3, warmup_steps=10, steps=100, decay_fraction=0.2,
                     min_lr_ratio=0.1)
    assert decay_steps(tc) == 20
    schedule = make_schedule(tc)
    expected = {0: 0.0, 5: 5e-4, 10: 1e-3, 50: 1e-3, 80: 1e-3, 90: 5.5e-4, 99: 1e-3 * (1 - 0.9 * 19 / 20),
                100: 1e-4, 150: 1e-4}
    for t, value in expected.items():
        assert float(schedule(t)) == pytest.approx(value, rel=1e-6, abs=1e-12), t
        assert value == pytest.approx(wsd_closed_form(t, 1e-3, 10, 100, 20, 1e-4))
    constant = make_schedule(dataclasses.replace(tc, warmup_steps=0, decay_fraction=1.0))  # no warmup: all decay
    assert [float(constant(t)) for t in (0, 50)] == pytest.approx([1e-3, 5.5e-4])
    assert float(make_schedule(dataclasses.replace(tc, schedule="cosine"))(100)) == pytest.approx(1e-4)


def test_both_groups_follow_the_wsd_shape_at_their_own_peaks():
    """Constant gradients, no momentum: Muon's update is -schedule x (a fixed orthogonal matrix) and
    AdamW's -schedule x sign(g), so each step's update is the closed form x its peak's update."""
    params, steps = tiny_params(), 10
    grads = random_like(params)
    tc = TrainConfig(optimizer="muon", schedule="wsd", steps=steps, warmup_steps=2, decay_fraction=0.4,
                     min_lr_ratio=0.25, lr=1e-3, matrix_lr=0.05, muon_momentum=0.0, weight_decay=0.0)
    tx = make_optimizer(tc, LABELS)
    state, updates, update = tx.init(params), [], jax.jit(tx.update)
    for _ in range(steps):
        u, state = update(grads, state, params)
        updates.append(u)
    at_peak = updates[3]
    for t, u in enumerate(updates):
        factor = wsd_closed_form(t, 1.0, 2, steps, 4, 0.25)
        for label, a, b in zip(jax.tree.leaves(param_groups(params, LABELS)), jax.tree.leaves(u), jax.tree.leaves(at_peak)):
            np.testing.assert_allclose(a, factor * np.asarray(b), rtol=2e-4, atol=1e-9, err_msg=f"{label} step {t}")
    c_fc = updates[3]["blocks"][0]["mlp"]["c_fc"]["W"]  # the Muon group peaks at matrix_lr x width 2 x near-orthogonal
    assert 0.6 * 0.1 < float(jnp.linalg.norm(c_fc, ord=2)) < 1.21 * 0.1


def test_bad_settings_are_refused_by_field():
    for bad, field in [({"optimizer": "lion"}, "optimizer"), ({"schedule": "linear"}, "schedule"),
                       ({"decay_fraction": 0.0}, "decay_fraction"), ({"decay_fraction": 1.5}, "decay_fraction"),
                       ({"matrix_lr": 0.0}, "matrix_lr"), ({"matrix_lr": math.inf}, "matrix_lr"),
                       ({"muon_momentum": 1.0}, "muon_momentum"),
                       ({"muon_ns_steps": 0}, "muon_ns_steps"),
                       ({"optimizer": "muon", "schedule": "wsd", "steps": 10, "warmup_steps": 9}, "warmup_steps")]:
        with pytest.raises(ValueError) as info:
            TrainConfig(**bad)
        assert info.value.field == field, bad
    TrainConfig(schedule="wsd", steps=10, warmup_steps=9)  # sgd: no warmup, nothing to refuse
    TrainConfig(optimizer="adamw", schedule="wsd", steps=10, warmup_steps=8)  # warmup ends where the decay starts


# ----------------------------------------------------------------------------- training with muon


@pytest.fixture(scope="module")
def corpus_arrays():
    with open(data.DEFAULT_TEXT, encoding="utf-8") as f:
        corpus = f.read(2000)
    vocab = data.Vocab.from_text(corpus)
    config = GPT.make_config(vocab_size=vocab.size, **TINY)
    return config, text.build_text(text.split_text(corpus)[0], vocab, config.block_size)


def muon_config(**over):
    return TrainConfig(**{**GPT.train_defaults, "optimizer": "muon", "schedule": "wsd", "steps": 20,
                          "warmup_steps": 2, "batch_size": 8, "chunk_size": 10, **over})


def test_muon_lowers_the_loss_and_resumes_bit_identically(corpus_arrays, tmp_path):
    """Two chunks straight, or one, a checkpoint round trip, then the other: the same bits
    (one compiled chunk serves all three, as `fit` compiles it)."""
    config, (X, Y) = corpus_arrays
    tc = muon_config()
    step = make_train_step(GPT, config, make_optimizer(tc, LABELS))
    chunk = make_train_chunk(step, 10, tc.batch_size, batch=functools.partial(GPT.kind.batch,
                                                                               block_size=config.block_size))
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    half, first = chunk(create_train_state(GPT, config, tc, jax.random.key(0)), X, Y)
    straight, second = chunk(half, X, Y)
    assert float(first[0]) < math.log(config.vocab_size) + 0.05 and float(second[-3:].mean()) < float(first[0]) - 0.1
    checkpoint.save(str(tmp_path), half, {"model": "gpt"})
    restored = checkpoint.restore(checkpoint.template_of(lambda: half), checkpoint.load(str(tmp_path))[1])
    assert_trees_close(restored, half, rtol=0)  # muon's momentum and AdamW's moments included
    assert set(restored.opt_state[1].inner_states) == {MUON, ADAMW}
    resumed, again = chunk(restored, X, Y)
    np.testing.assert_array_equal(again, second)
    assert_trees_close(resumed, straight, rtol=0)


def test_a_muon_sweep_trains_each_run_as_alone(corpus_arrays):
    config, (X, Y) = corpus_arrays
    tc = muon_config(steps=10)
    runs = sweep.grid(GPT, config, tc, {"lr": [1e-3, 3e-3]}, [0])  # the AdamW group's lr; matrix_lr is shared
    result = sweep.train_sweep(GPT, runs, X, Y, quiet=True)
    assert len({tuple(c) for c in result.curves}) == 2
    run = runs[1]
    ts = create_train_state(GPT, run.config, run.train_config, jax.random.key(run.seed))
    alone, _ = fit(GPT, run.config, run.train_config, X, Y, ts)
    assert_trees_close(sweep.unstack(result.states, 1).params, alone.params, rtol=1e-4, atol=1e-6)


def test_flags_and_help(capsys, tmp_path):
    train = next(a for a in build_parser()._subparsers._group_actions).choices["train"]
    help_text = " ".join(train.format_help().split())
    for words in ("--optimizer {sgd,adamw,muon}", "--schedule {cosine,wsd}", "--matrix-lr MATRIX_LR",
                  "--muon-momentum MUON_MOMENTUM", "--decay-fraction DECAY_FRACTION", "(default 0.02)",
                  "(default 0.95)", "(default cosine; gpt-speedrun: wsd)"):
        assert words in help_text, words
    args = build_parser().parse_args(["train", "--optimizer", "muon", "--schedule", "wsd", "--matrix-lr", "0.05",
                                      "--muon-momentum", "0.9", "--decay-fraction", "0.3"])
    assert (args.optimizer, args.schedule, args.matrix_lr, args.muon_momentum, args.decay_fraction) == (
        "muon", "wsd", 0.05, 0.9, 0.3)
    for argv, message in [(["--decay-fraction", "0"], "--decay-fraction must be in (0, 1], got 0.0"),
                          (["--schedule", "linear"], "argument --schedule: invalid choice"),
                          (["--matrix-lr", "-1"], "--matrix-lr must be a positive number")]:
        with pytest.raises(SystemExit) as info:
            raise SystemExit(main(["train", *argv, "--out", str(tmp_path / "o")]))
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
