"""draw_dot builds the right graph (checked in its DOT source, never rendered) and says
what to install when graphviz or dot is missing. The dot program is not needed here."""

import re
import sys

import pytest

from makemore_jax.micrograd import draw
from makemore_jax.micrograd.engine import Value


@pytest.fixture
def dot_installed(monkeypatch):
    """The Python package is needed to build a graph; the dot program only to render it."""
    pytest.importorskip("graphviz")
    monkeypatch.setattr(draw, "dot_available", lambda: True)


def lecture_graph():
    a, b, c, f = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c"), Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    L.backward()
    return L, {v.label: v for v in (a, b, c, d, e, f, L)}


def node_lines(dot):
    return [line.strip() for line in dot.body if "->" not in line]


def edge_pairs(dot):
    return {tuple(s.strip('"') for s in re.match(r"\s*(\S+) -> (\S+)", line).groups())
            for line in dot.body if "->" in line}


def test_draw_dot_nodes_and_edges(dot_installed):
    L, v = lecture_graph()
    dot = draw.draw_dot(L)
    assert isinstance(dot, sys.modules["graphviz"].Digraph)
    assert "rankdir=LR" in dot.source
    lines = node_lines(dot)
    # 7 values and 3 operations (*, +, *)
    assert sum("shape=record" in line for line in lines) == 7
    assert len(lines) == 10
    uid = {name: str(id(node)) for name, node in v.items()}
    assert edge_pairs(dot) == {
        (uid["a"], uid["e"] + "*"), (uid["b"], uid["e"] + "*"), (uid["e"] + "*", uid["e"]),
        (uid["e"], uid["d"] + "+"), (uid["c"], uid["d"] + "+"), (uid["d"] + "+", uid["d"]),
        (uid["d"], uid["L"] + "*"), (uid["f"], uid["L"] + "*"), (uid["L"] + "*", uid["L"]),
    }
    record_a = next(line for line in lines if line.startswith(uid["a"] + " "))
    assert "{ a | data 2.0000 | grad 6.0000 }" in record_a
    assert any(line.startswith(f'"{uid["d"]}+"') and "label=\"+\"" in line for line in lines)


def test_node_used_twice_gets_one_edge(dot_installed):
    a = Value(3.0, label="a")
    out = a + a
    out.backward()
    dot = draw.draw_dot(out, rankdir="TB")
    assert "rankdir=TB" in dot.source
    assert edge_pairs(dot) == {(str(id(a)), str(id(out)) + "+"), (str(id(out)) + "+", str(id(out)))}
    assert "grad 2.0000" in dot.source


def test_record_label_characters_are_escaped(dot_installed):
    dot = draw.draw_dot(Value(1.0, label="{x|y}"))
    assert r"\{x\|y\}" in dot.source


def test_trace_handles_deep_graphs():
    y = Value(0.0)
    for _ in range(20_000):
        y = y + 1.0
    nodes, edges = draw.trace(y)
    assert len(nodes) == 40_001 and len(edges) == 40_000


def test_bad_rankdir_raises(dot_installed):
    with pytest.raises(ValueError, match="rankdir"):
        draw.draw_dot(Value(1.0), rankdir="sideways")


def test_missing_python_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(ImportError, match=r'pip install "makemore-jax\[viz\]"') as excinfo:
        draw.draw_dot(Value(1.0))
    assert "apt-get install graphviz" in str(excinfo.value)


def test_missing_dot_program_says_what_to_install(monkeypatch):
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    assert draw.dot_available() is False
    with pytest.raises(RuntimeError, match="dot program") as excinfo:
        draw.draw_dot(Value(1.0))
    assert "apt-get install graphviz" in str(excinfo.value)


def test_dot_check_finds_a_dot_on_path(monkeypatch):
    monkeypatch.setattr(draw.shutil, "which", lambda name: "/usr/bin/dot" if name == "dot" else None)
    assert draw.dot_available() is True
