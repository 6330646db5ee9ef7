"""The fused engine takes the same steps as the lectures' PyTorch loop (skipped without torch).

Same initial parameters, same minibatch rows, plain SGD: the two trajectories must agree
step by step up to float32 rounding. This pins the engine (sampling aside) to the lecture.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from makemore_jax import models  # noqa: E402
from makemore_jax.data import Vocab, build_context_dataset, split_words  # noqa: E402
from makemore_jax.train import (TrainConfig, batch_indices, create_train_state, make_optimizer,  # noqa: E402
                                make_train_chunk, make_train_step)

STEPS = 600


def torch_lecture_loop(params: dict, X: np.ndarray, Y: np.ndarray, rows: np.ndarray, lr: float) -> list[float]:
    """Lecture 2's loop, verbatim in spirit, on the given minibatch rows."""
    C, W1, b1, W2, b2 = (torch.tensor(np.asarray(params[k]), requires_grad=True) for k in ("C", "W1", "b1", "W2", "b2"))
    X, Y = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)
    losses = []
    for ix in rows:
        ix = torch.tensor(ix, dtype=torch.long)
        emb = C[X[ix]]
        h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)
        loss = torch.nn.functional.cross_entropy(h @ W2 + b2, Y[ix])
        for p in (C, W1, b1, W2, b2):
            p.grad = None
        loss.backward()
        for p in (C, W1, b1, W2, b2):
            p.data += -lr * p.grad
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("init, exact_steps, whole_run_rtol", [
    ("kaiming", 100, 2e-3),  # the lecture-3 init: smooth, the trajectories stay together
    ("unit", 10, None),  # lecture 2's loss-27 start: huge gradients amplify rounding (chaotic)
])
def test_fused_engine_follows_the_pytorch_loop(bundled_words, init, exact_steps, whole_run_rtol):
    vocab = Vocab.from_words(bundled_words)
    X, Y = build_context_dataset(split_words(bundled_words)[0], vocab, 3)
    model = models.get("mlp")
    config = model.make_config(vocab_size=vocab.size, init=init)
    tc = TrainConfig(steps=STEPS, lr=0.1, lr_decay_step=None)
    ts = create_train_state(model, config, tc, jax.random.key(0))
    rows = np.asarray(batch_indices(ts.key, jnp.arange(STEPS), 32, len(X)))
    chunk = make_train_chunk(make_train_step(model, config, make_optimizer(tc)), STEPS, 32)
    _, ours = chunk(ts, jnp.asarray(X), jnp.asarray(Y))

    p = ts.params
    lecture_names = {"C": p["C"], "W1": p["layers"][0]["linear"]["W"], "b1": p["layers"][0]["linear"]["b"],
                     "W2": p["out"]["linear"]["W"], "b2": p["out"]["linear"]["b"]}
    theirs = torch_lecture_loop(lecture_names, X, Y, rows, 0.1)
    ours = np.asarray(ours)
    # float32 rounding differs between the two libraries and grows along the trajectory,
    # but stays far below the step-to-step change of the loss
    np.testing.assert_allclose(ours[:exact_steps], theirs[:exact_steps], rtol=1e-4)
    if whole_run_rtol is not None:
        np.testing.assert_allclose(ours, theirs, rtol=whole_run_rtol)


@pytest.mark.parametrize("name", ["rnn", "gru", "transformer"])
def test_sequence_models_compute_makemores_logits(name):
    """Same parameters, same tokens: our model and makemore.py's PyTorch module give the same logits."""
    from benchmarks.references import torch_rnn, torch_transformer
    model = models.get(name)
    config = model.make_config(vocab_size=27, block_size=16)
    params, state = model.init(jax.random.key(0), config)
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape), params)  # off init
    x = np.array(jax.random.randint(jax.random.key(2), (8, 16), 0, 27))  # a writable copy for torch
    ours = np.asarray(model.bind(config)(params, state, jnp.asarray(x), train=False)[0])
    if name == "transformer":
        reference = torch_transformer.load_jax_params(torch_transformer.make_model(config), params)
    else:
        reference = torch_rnn.load_jax_params(torch_rnn.MakemoreRNN(config), params)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x).long()).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
