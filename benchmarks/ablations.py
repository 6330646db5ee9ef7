"""Ablations of the fused training engine: what each change to the step buys, one at a time, on any
model. A variant is a chunk built from the library's public pieces plus its process's XLA flags;
every repeat is a fresh worker, variants alternating, timed after untimed chunks. Results: ABLATIONS.md.

    python -m benchmarks.ablations [--model mlp] [--repeats 5] [--steps 20000] [VARIANT ...]
    python -m benchmarks.ablations --list
"""

import argparse

from benchmarks.harness import Side, compare, pool, table
from benchmarks.machine import ONE_XLA_THREAD, cpu_model

CHUNK = 1000
VARIANTS = {  # name -> (what it changes against "engine", XLA_FLAGS)
    "engine": ("the shipped engine (train.make_train_chunk), as the CLI runs it", ONE_XLA_THREAD),
    "engine, eigen threads": ("the same with XLA's default Eigen thread pool", ""),
    "vector width 512": ("XLA's CPU code for 512-bit vectors (its default is 256)",
                         f"{ONE_XLA_THREAD} --xla_cpu_prefer_vector_width=512"),
    "per-step gather, unroll 2": ("X[ix], Y[ix] inside every step, 2-step unroll (the engine before)", ONE_XLA_THREAD),
    "unroll 2": ("the chunk's gather with a 2-step scan unroll", ONE_XLA_THREAD),
    "donate": ("the chunk donates the state's buffers (donate_argnums=0)", ONE_XLA_THREAD),
    "optax CE": ("optax.softmax_cross_entropy_with_integer_labels as the loss", ONE_XLA_THREAD),
    "one-hot CE": ("the loss as -sum(one_hot(y) * log_softmax(logits)): no gather/scatter", ONE_XLA_THREAD),
}
DEFAULT = ("engine", "per-step gather, unroll 2", "unroll 2")


def _loss_step(model, config, tx, loss: str):
    """A train step like the library's with another cross-entropy (a context model's [B, vocab] logits)."""
    import jax
    import jax.numpy as jnp
    import optax

    def objective(params, state, x, y):
        logits, new_state = model.bind(config)(params, state, x, train=True)
        if loss == "optax CE":
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)), new_state
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.sum(logp * jax.nn.one_hot(y, logits.shape[-1], dtype=logp.dtype), -1)), new_state

    def step(ts, batch):
        (value, state), grads = jax.value_and_grad(objective, has_aux=True)(ts.params, ts.model_state, *batch)
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        return ts.replace(step=ts.step + 1, params=optax.apply_updates(ts.params, updates), model_state=state,
                          opt_state=opt_state), {"loss": value}
    return step


def variant_chunk(variant: str, model, config, tc, train_step, n: int):
    """The jitted chunk(ts, X, Y) -> (ts, losses [n]) of `variant`."""
    import jax
    import jax.numpy as jnp

    from makemore_jax.train import batch_indices, make_optimizer, make_train_chunk
    B = tc.batch_size
    if variant in ("optax CE", "one-hot CE"):
        return make_train_chunk(_loss_step(model, config, make_optimizer(tc, model.param_labels), variant), n, B)
    if variant not in ("per-step gather, unroll 2", "unroll 2", "donate"):
        return make_train_chunk(train_step, n, B)
    loss_only = lambda ts, b: (lambda out: (out[0], out[1]["loss"]))(train_step(ts, b))  # noqa: E731

    def chunk(ts, X, Y):
        rows = batch_indices(ts.key, ts.step + jnp.arange(n), B, X.shape[0])
        if variant == "per-step gather, unroll 2":
            return jax.lax.scan(lambda ts, ix: loss_only(ts, (X[ix], Y[ix])), ts, rows, unroll=2)
        return jax.lax.scan(loss_only, ts, (X[rows], Y[rows]), unroll=2 if variant == "unroll 2" else 1)
    return jax.jit(chunk, donate_argnums=0 if variant == "donate" else ())


def side(variant: str, model: str, chunk: int = CHUNK, warmup_chunks: int = 5):
    """Factory (fresh worker): the variant's fused loop on `model`'s training problem, warmed up."""
    from benchmarks.sides import fused_run, jax_setup
    m, config, tc, ts, train_step, X, Y = jax_setup(model)
    run = fused_run(variant_chunk(variant, m, config, tc, train_step, chunk), ts, X, Y, chunk)
    run(chunk * (1 + warmup_chunks))  # compile, then the chunks a fresh process runs slower
    return run, {"variant": variant}


def main(variants=DEFAULT, model: str = "mlp", repeats: int = 5, steps: int = 20_000, chunk: int = CHUNK,
         warmup_chunks: int = 5) -> dict:
    """Time the variants, alternating fresh processes; print a table; return {variant: figures}."""
    args = {"model": model, "chunk": chunk, "warmup_chunks": warmup_chunks}
    sides = {v: Side("jax", "benchmarks.ablations:side", {**args, "variant": v}, n=steps,
                     env={"XLA_FLAGS": VARIANTS[v][1]}) for v in variants}
    with pool() as workers:
        figures = compare(workers, sides, repeats=repeats, fresh=True)
    print(f"\n{model}, {steps:,} timed steps per process after {warmup_chunks} untimed chunks, median of {repeats} "
          f"alternating fresh processes; {cpu_model()}\n")
    table(figures, variants[0], "steps/s")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablations")
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help="default: " + ", ".join(DEFAULT))
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--list", action="store_true", help="list the variants")
    args = parser.parse_args()
    if args.list or set(args.variants) - set(VARIANTS):
        print("\n".join(f"{name:28s} {what}" for name, (what, _) in VARIANTS.items()))
        raise SystemExit(0 if args.list and not set(args.variants) - set(VARIANTS) else 2)
    main(tuple(args.variants) or DEFAULT, args.model, args.repeats, args.steps)
