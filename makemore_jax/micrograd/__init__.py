"""micrograd: a scalar autograd engine and a tiny nn library, for checking against jax.grad.

    from makemore_jax.micrograd import MLP, Value
    a, b = Value(2.0), Value(-3.0)
    (a * b + a).backward()  # a.grad == -2.0, b.grad == 2.0

compare (the JAX bridge), draw (graphviz) and demos are imported on their own.
"""

from makemore_jax.micrograd.engine import Value
from makemore_jax.micrograd.nn import MLP, Layer, Module, Neuron

__all__ = ["MLP", "Layer", "Module", "Neuron", "Value"]
