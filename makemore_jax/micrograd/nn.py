"""A tiny neural-network library on top of Value: Neuron, Layer and MLP."""

from __future__ import annotations

import random
from collections.abc import Sequence

from makemore_jax.micrograd.engine import Value

NONLINS = ("tanh", "relu", "sigmoid")  # names of Value methods; None means linear


def _checked(nonlin: str | None) -> str | None:
    if nonlin is not None and nonlin not in NONLINS:
        raise ValueError(f"nonlin must be one of {NONLINS} or None, got {nonlin!r}")
    return nonlin


class Module:
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        return []


class Neuron(Module):
    """nonlin(w·x + b), w ~ uniform(-1, 1); b is 0 (library) or uniform(-1, 1) (lecture)."""

    def __init__(self, nin: int, nonlin: str | None = "relu", *, seed: int | random.Random = 0,
                 zero_bias: bool = True):
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0 if zero_bias else rng.uniform(-1, 1))
        self.nonlin = _checked(nonlin)

    def __call__(self, x: Sequence[Value | float]) -> Value:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return getattr(act, self.nonlin)() if self.nonlin else act

    def parameters(self) -> list[Value]:
        return self.w + [self.b]


class Layer(Module):
    def __init__(self, nin: int, nout: int, *, seed: int | random.Random = 0, **kwargs):
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)  # one for all
        self.neurons = [Neuron(nin, seed=rng, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """Layers of sizes nouts; nonlin on every layer, the last one too unless linear_out.

    Args:
        nin: number of inputs. nouts: the layer widths, e.g. [16, 16, 1].
        nonlin: "relu" (library moons demo), "tanh" (lecture) or "sigmoid".
        linear_out: leave the last layer linear (library) or not (lecture).
        zero_bias: biases start at 0 (library) or uniform(-1, 1) (lecture).
        seed: seeds one random.Random that draws every weight in order.
    """

    def __init__(self, nin: int, nouts: Sequence[int], *, nonlin: str = "relu", linear_out: bool = True,
                 zero_bias: bool = True, seed: int = 0):
        rng, sizes = random.Random(seed), [nin, *nouts]
        self.nonlin, self.linear_out = _checked(nonlin), linear_out
        self.layers = [Layer(sizes[i], sizes[i + 1], seed=rng, zero_bias=zero_bias,
                             nonlin=None if linear_out and i == len(nouts) - 1 else nonlin)
                       for i in range(len(nouts))]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

