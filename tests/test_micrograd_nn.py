"""The tiny nn library: parameter counts, seeded initialisation, activations, the forward
pass against numpy, and zero_grad."""

import math
import random

import numpy as np
import pytest

from makemore_jax.micrograd.engine import Value
from makemore_jax.micrograd.nn import MLP, Layer, Neuron


@pytest.mark.parametrize(
    "nin, nouts, count",
    [(3, [4, 4, 1], 41), (2, [16, 16, 1], 337)],  # the lecture MLP; the moons MLP (README: 337)
)
def test_parameter_counts(nin, nouts, count):
    assert len(MLP(nin, nouts).parameters()) == count
    assert len({id(p) for p in MLP(nin, nouts).parameters()}) == count


def test_neuron_and_layer_parameter_counts():
    assert len(Neuron(3).parameters()) == 4
    assert len(Layer(3, 4).parameters()) == 16


def test_neurons_of_a_layer_draw_different_weights():
    layer = Layer(3, 4, seed=2)
    assert len({tuple(w.data for w in n.w) for n in layer.neurons}) == 4
    assert [w.data for w in Neuron(3, seed=2).w] == [w.data for w in layer.neurons[0].w]


def weights(mlp):
    return [p.data for p in mlp.parameters()]


def test_same_seed_same_weights_other_seed_other_weights():
    assert weights(MLP(3, [4, 4, 1], seed=7)) == weights(MLP(3, [4, 4, 1], seed=7))
    assert weights(MLP(3, [4, 4, 1], seed=7)) != weights(MLP(3, [4, 4, 1], seed=8))


@pytest.mark.parametrize("zero_bias", [True, False])
def test_weights_are_drawn_in_order_from_one_seeded_generator(zero_bias):
    rng = random.Random(5)
    expected = []
    for nin, nout in [(2, 3), (3, 1)]:
        for _ in range(nout):
            expected += [rng.uniform(-1, 1) for _ in range(nin)]
            expected.append(0.0 if zero_bias else rng.uniform(-1, 1))
    assert weights(MLP(2, [3, 1], zero_bias=zero_bias, seed=5)) == expected


def test_activation_per_layer():
    moons = MLP(2, [16, 16, 1])  # library defaults: relu hidden layers, linear output
    assert [{n.nonlin for n in layer.neurons} for layer in moons.layers] == [{"relu"}, {"relu"}, {None}]
    lecture = MLP(3, [4, 4, 1], nonlin="tanh", linear_out=False)
    assert [{n.nonlin for n in layer.neurons} for layer in lecture.layers] == [{"tanh"}] * 3


@pytest.mark.parametrize("nonlin, f", [
    ("tanh", math.tanh),
    ("relu", lambda z: max(z, 0.0)),
    ("sigmoid", lambda z: 1 / (1 + math.exp(-z))),
    (None, lambda z: z),
])
def test_neuron_forward(nonlin, f):
    n = Neuron(3, nonlin, seed=1, zero_bias=False)
    x = [0.5, -1.5, 2.0]
    z = sum(w.data * xi for w, xi in zip(n.w, x)) + n.b.data
    assert n(x).data == pytest.approx(f(z), rel=1e-14, abs=1e-15)
    assert n([Value(v) for v in x]).data == pytest.approx(f(z), rel=1e-14, abs=1e-15)


def test_mlp_forward_matches_numpy():
    mlp = MLP(3, [4, 4, 1], nonlin="tanh", linear_out=False, zero_bias=False, seed=3)
    h = np.array([2.0, 3.0, -1.0])
    for layer in mlp.layers:
        W = np.array([[w.data for w in n.w] for n in layer.neurons])
        b = np.array([n.b.data for n in layer.neurons])
        h = np.tanh(W @ h + b)
    assert mlp([2.0, 3.0, -1.0]).data == pytest.approx(h[0], rel=1e-13)


def test_output_is_a_value_for_one_output_and_a_list_otherwise():
    assert isinstance(MLP(2, [3, 1])([1.0, 2.0]), Value)
    out = MLP(2, [3, 2])([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(v, Value) for v in out)


def test_zero_grad_clears_every_parameter():
    mlp = MLP(3, [4, 4, 1], nonlin="tanh", linear_out=False, zero_bias=False, seed=0)
    mlp([2.0, 3.0, -1.0]).backward()
    assert any(p.grad != 0.0 for p in mlp.parameters())
    mlp.zero_grad()
    assert all(p.grad == 0.0 for p in mlp.parameters())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="nonlin must be one of"):
        MLP(2, [1], nonlin="gelu")
    with pytest.raises(ValueError, match="nonlin must be one of"):
        Neuron(2, "softplus")
    with pytest.raises(ValueError):
        Neuron(3)([1.0, 2.0])  # wrong number of inputs
