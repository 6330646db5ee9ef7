"""One forward+backward of the moons MLP(2, [16, 16, 1]) on 100 points (max-margin + 1e-4 L2): micrograd
(cycle collector on, and paused as timeit runs it) against jax.jit(jax.value_and_grad(...)).

    python -m benchmarks micrograd [--quick]
"""

import gc

from benchmarks.harness import Side, compare, markdown, pool

SIZES = {"full": (5, 0.5), "quick": (3, 0.05), "toy": (1, 0.0)}  # repeats, seconds per repeat
SIDES = {"micrograd": ("micrograd", "micrograd_side", {"gc_paused": False}),
         "micrograd, cycle collector paused": ("micrograd", "micrograd_side", {"gc_paused": True}),
         "jax.jit(jax.value_and_grad)": ("jax", "jax_side", {})}


def _problem():
    from makemore_jax.micrograd.demos import make_moons
    from makemore_jax.micrograd.nn import MLP
    X, y = make_moons(100, noise=0.1, seed=0)  # (100, 2), (100,)
    return MLP(2, [16, 16, 1], nonlin="relu", linear_out=True, seed=0), X, y


def micrograd_side(gc_paused: bool):
    """Factory: run(n) -> n micrograd forward+backward passes (cycle collector paused meanwhile, or not)."""
    from makemore_jax.micrograd.compare import loss_micrograd
    mlp, X, y = _problem()
    xs, ys = X.tolist(), y.tolist()

    def run(n):
        was = gc.isenabled()
        if gc_paused:
            gc.disable()
        for _ in range(n):
            loss = loss_micrograd(mlp, xs, ys, loss="max_margin")
            mlp.zero_grad()
            loss.backward()
        if was:
            gc.enable()
        return n, loss.data
    return run, {}


def jax_side():
    """Factory: run(n) -> n calls of the jitted value_and_grad of the same loss at micrograd's parameters."""
    import functools

    import jax
    import jax.numpy as jnp

    from makemore_jax.micrograd.compare import loss_jax, mlp_params
    mlp, X, y = _problem()
    params = mlp_params(mlp)
    X, y = jnp.asarray(X, params[0]["W"].dtype), jnp.asarray(y, params[0]["W"].dtype)
    step = jax.jit(jax.value_and_grad(functools.partial(loss_jax, loss="max_margin", nonlin="relu", linear_out=True)))
    run = lambda n: (n, [jax.block_until_ready(step(params, X, y)) for _ in range(n)][-1][0])  # noqa: E731
    return run, {"device": str(jax.devices()[0]), "dtype": str(params[0]["W"].dtype)}


def main(mode: str = "full") -> dict:
    """Time both; print a table; return {"loss_micrograd", "loss_jax", "ratio", "ratio_gc_paused", "sides"}."""
    repeats, seconds = SIZES[mode]
    sides = {name: Side(process, f"benchmarks.micrograd_vs_jax:{factory}", args, first_n=1)
             for name, (process, factory, args) in SIDES.items()}
    with pool() as workers:
        figures = compare(workers, sides, repeats=repeats, seconds=seconds)
    mg, paused, jx = figures.values()
    ratio, ratio_paused = jx["rate"] / mg["rate"], jx["rate"] / paused["rate"]

    def per_call(f: dict, unit: float) -> str:
        return f"{unit / f['rate']:,.1f} ({unit / f['max']:,.1f}-{unit / f['min']:,.1f})"
    print(f"moons MLP(2, [16, 16, 1]), 100 points, forward + backward; JAX on {jx['device']} in {jx['dtype']}; loss "
          f"{mg['value']:.6f} (micrograd) vs {jx['value']:.6f} (JAX); median of {repeats} alternating repeats\n")
    markdown("implementation | median time (min-max):", [
        ["micrograd", f"{per_call(mg, 1e3)} ms"], ["micrograd, cycle collector paused", f"{per_call(paused, 1e3)} ms"],
        ["jax.jit(jax.value_and_grad)", f"{per_call(jx, 1e6)} µs"],
        ["JAX first call (trace + compile)", f"{jx['first_call_s'] * 1e3:.0f} ms"],
        ["ratio micrograd / JAX", f"{ratio:,.0f}x ({ratio_paused:,.0f}x paused)"]])
    return {"loss_micrograd": mg["value"], "loss_jax": jx["value"], "ratio": ratio, "ratio_gc_paused": ratio_paused,
            "sides": figures}
