"""Draw a micrograd graph with graphviz: a record per Value (label | data | grad), a small
node per operation, and edges from the inputs through the operation to its result.

Needs the optional Python package (pip install "makemore-jax[viz]") and, to render, the
Graphviz `dot` program from the system package manager.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from makemore_jax.micrograd.engine import Value

if TYPE_CHECKING:
    import graphviz

INSTALL_PACKAGE = 'pip install "makemore-jax[viz]"'
INSTALL_DOT = "the system Graphviz package (e.g. apt-get install graphviz, or brew install graphviz)"


def _import_graphviz():
    try:
        import graphviz
    except ImportError:
        raise ImportError(
            f"draw_dot needs the Python graphviz package: {INSTALL_PACKAGE}, "
            f"and the dot program from {INSTALL_DOT}") from None
    return graphviz


def dot_available() -> bool:
    """Whether the Graphviz dot program is on PATH (draw_dot needs it)."""
    return shutil.which("dot") is not None


def trace(root: Value) -> tuple[list[Value], list[tuple[Value, Value]]]:
    """Every node root depends on and every (child, parent) edge, found without recursion.

    Args:
        root: the output node.

    Returns:
        nodes: each Value once, root first. edges: each (input, result) pair once.
    """
    nodes, edges, seen, stack = [], {}, {root}, [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for child in node._prev:
            edges[(child, node)] = None  # a dict keeps first-seen order and drops a + a's twin
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return nodes, list(edges)


def draw_dot(root: Value, rankdir: str = "LR") -> graphviz.Digraph:
    """The graph behind root as a graphviz.Digraph (call .render() or show it in Jupyter).

    Args:
        root: the output node; run root.backward() first to see the gradients.
        rankdir: "LR" (left to right), "TB" (top to bottom), "RL" or "BT".

    Returns:
        A Digraph with a record node "{ label | data x | grad g }" per Value and an
        ellipse per operation.

    Raises:
        ImportError: the Python graphviz package is missing.
        RuntimeError: the Graphviz dot program is not on PATH.
    """
    graphviz = _import_graphviz()
    if not dot_available():
        raise RuntimeError(f"draw_dot needs the Graphviz dot program on PATH: install {INSTALL_DOT}")
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    nodes, edges = trace(root)
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": rankdir})
    for n in nodes:
        uid = str(id(n))
        dot.node(name=uid, label=f"{{ {_escape(n.label)} | data {n.data:.4f} | grad {n.grad:.4f} }}",
                 shape="record")
        if n._op:
            dot.node(name=uid + n._op, label=n._op)
            dot.edge(uid + n._op, uid)
    for child, parent in edges:
        dot.edge(str(id(child)), str(id(parent)) + parent._op)
    return dot


def _escape(text: str) -> str:
    for ch in "\\{}|<>":  # characters with a meaning inside a record label
        text = text.replace(ch, "\\" + ch)
    return text
