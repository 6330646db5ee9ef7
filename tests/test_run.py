"""train_model / load_run: the short way in gives exactly what the functional core gives."""

import hashlib
import json
import os

import jax
import numpy as np
import pytest

from conftest import assert_trees_close
from makemore_jax import data, evaluate, models, train
from makemore_jax.data import read_data
from makemore_jax import load_run, train_model
from makemore_jax.run import Stopped, UsageError


@pytest.fixture(scope="module")
def words(bundled_words):
    return bundled_words[:1500]


def test_train_model_is_the_functional_core(words, tmp_path):
    run = train_model("mlp", data=words, steps=60, seed=3, n_hidden=16, chunk_size=30, out=str(tmp_path / "r"))
    # the same run by hand: split, dataset, state, fit
    vocab = data.Vocab.from_words(words)
    tr, dev, te = data.split_words(words)
    X, Y = data.build_context_dataset(tr, vocab, 3)
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, n_hidden=16)
    tc = train.TrainConfig(steps=60, chunk_size=30)
    ts = train.create_train_state(model, config, tc, jax.random.key(3))
    ts, _ = train.fit(model, config, tc, X, Y, ts)
    assert_trees_close(run.state.params, ts.params, rtol=0)
    assert run.config == config and run.train_config == tc and run.vocab == vocab
    losses = run.evaluate()
    Xd, Yd = data.build_context_dataset(dev, vocab, 3)
    assert losses["dev"] == pytest.approx(evaluate.split_loss(model.bind(config), ts.params, ts.model_state, Xd, Yd))
    assert set(losses) == {"train", "dev", "test"} and run.summary["steps"] == 60
    names = run.sample(5, seed=1)
    assert len(names) == 5 and all(set(n) <= set(vocab.chars[1:]) for n in names)
    # load_run gives the same run back; run.save writes a checkpoint load_run reads
    again = load_run(str(tmp_path / "r"), data=words)
    assert_trees_close(again.state.params, run.state.params, rtol=0)
    assert again.evaluate() == pytest.approx(losses) and again.sample(5, seed=1) == names
    assert json.load(open(tmp_path / "r" / "checkpoint.json"))["seed"] == 3
    path = again.save(str(tmp_path / "copy"))
    assert os.path.isfile(path) and load_run(str(tmp_path / "copy")).sample(5, seed=1) == names


def backend_compiles(fn) -> int:
    """How many programs XLA compiles while fn() runs (JAX's backend-compile events)."""
    events = []
    listener = lambda name, *_, **__: events.append(name) if name == BACKEND_COMPILE else None  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(events)


BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def test_the_evaluation_compiled_ahead_is_the_one_evaluate_runs(words):
    """Run.compile_evaluation (what the train command runs in a thread while training compiles) leaves
    the very programs evaluate then runs: evaluate compiles nothing, and its losses are split_loss's."""
    run = train_model("mlp", data=words, steps=4, seed=3, n_embd=7, n_hidden=13, chunk_size=2, eval_train=False)
    evaluate._batch_loss.clear_cache()  # train_model evaluated these splits already
    assert backend_compiles(lambda: run.compile_evaluation(train=False)) >= 1
    losses = {}
    assert backend_compiles(lambda: losses.update(run.evaluate(train=False))) == 0
    X, Y = run.splits["test"]
    assert set(losses) == {"dev", "test"} and losses["test"] == evaluate.split_loss(
        run.model.bind(run.config), run.state.params, run.state.model_state, X, Y)
    assert backend_compiles(lambda: run.compile_evaluation(train=True)) == 1  # the training split's batch rows


def test_train_model_refuses_before_training(words, tmp_path):
    with pytest.raises(UsageError, match="n_hidden=8 does not apply to model bigram"):
        train_model("bigram", data=words, n_hidden=8)
    with pytest.raises(UsageError, match="n_hidden must be at least 1"):
        train_model("mlp", data=words, n_hidden=0)
    with pytest.raises(UsageError, match="unknown model"):
        train_model("nope", data=words)


def test_divergence_stops_with_the_last_good_run(words):
    with pytest.raises(Stopped, match="more than 10x the initial") as info:
        train_model("mlp", data=words, steps=40, lr=1e6, chunk_size=4, n_hidden=8)
    good = info.value.run
    assert int(good.state.step) % 4 == 0 and int(good.state.step) < 40
    assert all(np.isfinite(v) for v in good.evaluate().values())


def test_read_data_hashes_the_bytes_it_parsed(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"\xef\xbb\xbfemma\nava\n")
    loaded = read_data(str(path))
    assert loaded.items == ["emma", "ava"] and loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_format_1_checkpoints_still_load(words, tmp_path):
    from flax import serialization

    from makemore_jax import checkpoint
    run = train_model("bigram", data=words)
    meta = {**run.metadata(), "format": 1, "step": 0}  # as written before the array checksum
    state = serialization.to_state_dict(jax.device_get(run.state.replace(key=jax.random.key_data(run.state.key))))
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(serialization.msgpack_serialize({"meta": json.dumps(meta),
                                                                                   "state": state}))
    assert load_run(str(tmp_path), data=words).sample(4, seed=2) == run.sample(4, seed=2)
