"""micrograd against jax.grad in float64: the lecture's neuron, the lecture MLP, the moons
MLP, and the JAX copy of the network itself."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.micrograd import engine
from makemore_jax.micrograd.compare import (compare_gradients, loss_jax, loss_micrograd, mlp_apply, mlp_grads,
                                            mlp_params)
from makemore_jax.micrograd.demos import LECTURE_XS, LECTURE_YS, make_moons
from makemore_jax.micrograd.engine import Value
from makemore_jax.micrograd.nn import MLP


pytestmark = pytest.mark.usefixtures("x64_module")  # the whole module in float64 (conftest.py)


def lecture_mlp(seed=0):
    return MLP(3, [4, 4, 1], nonlin="tanh", linear_out=False, zero_bias=False, seed=seed)


def moons_mlp(seed=0):
    return MLP(2, [16, 16, 1], nonlin="relu", linear_out=True, seed=seed)


def test_lecture_neuron():
    # o = tanh(x1 w1 + x2 w2 + b), with b chosen so that the pre-activation is 0.8814 and
    # o = 1/sqrt(2); the lecture's hand-derived gradients follow from do/dn = 1 - o^2 = 0.5.
    x1, x2, w1, w2 = Value(2.0), Value(0.0), Value(-3.0), Value(1.0)
    b = Value(6.8813735870195432)
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.backward()
    assert o.data == pytest.approx(1 / math.sqrt(2), rel=1e-12)
    assert [x1.grad, w1.grad, x2.grad, w2.grad] == pytest.approx([-1.5, 1.0, 0.5, 0.0], rel=1e-12, abs=1e-15)

    def neuron(x, w, b):
        return jnp.tanh(jnp.dot(x, w) + b)

    args = (jnp.array([2.0, 0.0]), jnp.array([-3.0, 1.0]), jnp.float64(6.8813735870195432))
    dx, dw, db = jax.grad(neuron, argnums=(0, 1, 2))(*args)
    np.testing.assert_allclose(o.data, neuron(*args), rtol=1e-12)
    np.testing.assert_allclose([x1.grad, x2.grad], dx, rtol=1e-10)
    np.testing.assert_allclose([w1.grad, w2.grad], dw, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(b.grad, db, rtol=1e-10)


def assert_gradients_agree(result, rtol=1e-10):
    assert result.loss_micrograd == pytest.approx(result.loss_jax, rel=1e-12)
    assert len(result.max_rel_diff) == 6  # W and b of three layers
    assert max(result.max_rel_diff.values()) < rtol, result.max_rel_diff


@pytest.mark.parametrize("seed", [0, 1])
def test_lecture_mlp_sse(seed):
    result = compare_gradients(lecture_mlp(seed), LECTURE_XS, LECTURE_YS, loss="sse")
    assert_gradients_agree(result)


@pytest.mark.parametrize("seed", [0, 1])
def test_moons_mlp_max_margin(seed):
    X, y = make_moons(100, noise=0.1, seed=seed)
    result = compare_gradients(moons_mlp(seed), X.tolist(), y.tolist(), loss="max_margin", alpha=1e-4)
    assert_gradients_agree(result)
    assert max(result.max_abs_diff.values()) < 1e-12


def test_comparison_catches_a_wrong_gradient(monkeypatch):
    relu = engine.Value.relu

    def relu_with_wrong_slope(self):
        out = relu(self)
        out._local_grads = (1.1 * out._local_grads[0],)
        return out

    monkeypatch.setattr(engine.Value, "relu", relu_with_wrong_slope)
    X, y = make_moons(20, noise=0.1, seed=0)
    result = compare_gradients(moons_mlp(), X.tolist(), y.tolist(), loss="max_margin")
    assert result.loss_micrograd == pytest.approx(result.loss_jax, rel=1e-12)  # forward unchanged
    assert max(result.max_rel_diff.values()) > 0.01


def test_mlp_params_layout():
    params = mlp_params(lecture_mlp())
    shapes = [(layer["W"].shape, layer["b"].shape) for layer in params]
    assert shapes == [((4, 3), (4,)), ((4, 4), (4,)), ((1, 4), (1,))]
    assert params[0]["W"].dtype == jnp.float64
    mlp = lecture_mlp()
    assert float(params[1]["W"][2, 3]) == mlp.layers[1].neurons[2].w[3].data
    assert float(params[2]["b"][0]) == mlp.layers[2].neurons[0].b.data


@pytest.mark.parametrize("nonlin, linear_out, nouts", [
    ("tanh", False, [4, 4, 1]), ("relu", True, [16, 16, 1]), ("sigmoid", True, [5, 2]),
])
def test_mlp_apply_matches_micrograd_forward(nonlin, linear_out, nouts):
    mlp = MLP(3, nouts, nonlin=nonlin, linear_out=linear_out, zero_bias=False, seed=2)
    params = mlp_params(mlp)
    apply = jax.jit(mlp_apply, static_argnames=("nonlin", "linear_out"))  # one compile per shape
    batched = apply(params, np.array(LECTURE_XS), nonlin=nonlin, linear_out=linear_out)
    single = mlp_apply(params, LECTURE_XS[0], nonlin=nonlin, linear_out=linear_out)  # not jitted
    np.testing.assert_allclose(single, batched[0], rtol=1e-12)
    for x, out in zip(LECTURE_XS, batched):
        expected = mlp(x)
        expected = [v.data for v in expected] if isinstance(expected, list) else expected.data
        np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_losses_agree_and_grads_are_read_back():
    mlp = lecture_mlp()
    value = loss_micrograd(mlp, LECTURE_XS, LECTURE_YS, loss="sse")
    mlp.zero_grad()
    value.backward()
    grad_fn = jax.jit(jax.grad(loss_jax), static_argnames=("loss", "nonlin", "linear_out"))
    expected = grad_fn(mlp_params(mlp), jnp.asarray(LECTURE_XS), jnp.asarray(LECTURE_YS),
                                  loss="sse", nonlin="tanh", linear_out=False)
    for mine, theirs in zip(mlp_grads(mlp), expected):
        np.testing.assert_allclose(mine["W"], theirs["W"], rtol=1e-10)
        np.testing.assert_allclose(mine["b"], theirs["b"], rtol=1e-10)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        compare_gradients(lecture_mlp(), LECTURE_XS, LECTURE_YS, loss="mse")
