"""A scalar autograd engine: each Value remembers what it was made from and the local
derivative with respect to each of those inputs; backward() chains them (Karpathy's
micrograd, made safe for deep graphs and extreme inputs).
"""

from __future__ import annotations

import math


class Value:
    """One scalar in a computation graph and the gradient of the graph's output w.r.t. it.

    Args:
        data: the number.
        _children: the Values it was computed from (the operations fill these in).
        _op: the name of the operation that made it, for drawing.
        _local_grads: d(data)/d(child) for each child, in the same order.
        label: an optional name, for drawing.
    """

    # No per-node closures (as the original has): nodes hold no reference cycles, so
    # building big graphs doesn't keep Python's cycle collector busy.
    __slots__ = ("data", "grad", "label", "_prev", "_op", "_local_grads")

    def __init__(self, data: float, _children: tuple[Value, ...] = (), _op: str = "",
                 _local_grads: tuple[float, ...] = (), label: str = ""):
        self.data = float(data)
        self.grad = 0.0  # d(output)/d(self), filled in by output.backward()
        self.label = label
        self._prev = _children
        self._op = _op
        self._local_grads = _local_grads

    # ------------------------------------------------------------------------- operations

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __pow__(self, k: int | float) -> Value:
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            return NotImplemented  # only constant exponents: x ** Value is not supported
        x = self.data
        if x < 0 and not float(k).is_integer():
            raise ValueError(f"{x} ** {k}: a negative base needs an integer exponent")
        y = x**k  # 0.0 ** -1 raises ZeroDivisionError, as division by zero should
        # d/dx x^k = k x^(k-1); at x = 0 with 0 < k < 1 that is +inf (as in jax), not an error
        d = 0.0 if k == 0 else (math.inf if x == 0 and k < 1 else k * x ** (k - 1))
        return Value(y, (self,), f"**{k}", (d,))

    def exp(self) -> Value:
        y = math.exp(self.data)  # raises OverflowError above ~709, like any float exp
        return Value(y, (self,), "exp", (y,))

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log({self.data}): the logarithm needs a positive number")
        return Value(math.log(self.data), (self,), "log", (1.0 / self.data,))

    def tanh(self) -> Value:
        # (e^2x - 1)/(e^2x + 1) overflows for large x; exp(-2|x|) stays in (0, 1].
        t = math.exp(-2.0 * abs(self.data))
        y = math.copysign((1.0 - t) / (1.0 + t), self.data)
        return Value(y, (self,), "tanh", (1.0 - y * y,))

    def sigmoid(self) -> Value:
        # Only ever exponentiate a non-positive number, so exp cannot overflow.
        if self.data >= 0:
            s = 1.0 / (1.0 + math.exp(-self.data))
        else:
            e = math.exp(self.data)
            s = e / (1.0 + e)
        return Value(s, (self,), "sigmoid", (s * (1.0 - s),))

    def relu(self) -> Value:
        return Value(max(self.data, 0.0), (self,), "relu", (float(self.data > 0),))

    # ------------------------------------------------------------------------- backward

    def backward(self) -> None:
        """Add d(self)/d(node) to .grad of every node self depends on.

        Gradients accumulate (zero them between steps). The topological order is built
        with an explicit stack, not recursion, so graphs of any depth work.
        """
        topo, visited = [], set()
        stack = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                topo.append(node)  # after all its children: a topological order
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev if child not in visited)
        self.grad = 1.0
        for node in reversed(topo):  # chain rule; += so a child used twice (a + a) gets both
            for child, local_grad in zip(node._prev, node._local_grads):
                child.grad += local_grad * node.grad

    # ------------------------------------------------------------------------- sugar

    def __neg__(self) -> Value:
        return self * -1

    def __radd__(self, other: float) -> Value:  # other + self
        return self + other

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __rsub__(self, other: float) -> Value:  # other - self
        return other + (-self)

    def __rmul__(self, other: float) -> Value:  # other * self
        return self * other

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __rtruediv__(self, other: float) -> Value:  # other / self
        return other * self**-1

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"
