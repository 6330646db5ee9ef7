"""PyTorch reference training loops for the speed benchmarks, one module per lecture.

Each module imports torch at top level and exposes

    loops(X, Y, config, *, batch_size=32, seed=0) -> {variant: run(n_steps) -> last loss}

where X, Y are numpy arrays built by the model's own dataset, `config` is the JAX model's
config dataclass (the reference builds the same sizes from it) and the variants are
"lecture eager" (the lectures' own code), "torch.nn + torch.optim" and "torch.compile"
(others may add more). Optional: `split_loss(X, Y, config) -> () -> loss over the whole
split` (the `evaluation` benchmark's PyTorch column). `REFERENCES` maps a registry model name to its module here; a model
without an entry gets its JAX rows only, and the tables say so.

torch is not a project dependency: it comes from the optional `bench` extra (on the
project's machines install the CPU build with `pip install torch==2.13.0`). The suite
imports these modules only inside PyTorch worker processes.
"""

REFERENCES: dict[str, str] = {
    "bigram-nn": "torch_bigram",
    "gpt": "torch_gpt",
    "mlp": "torch_mlp",
    "mlp-bn": "torch_mlp",
    "mlp-deep": "torch_mlp",
    "bow": "torch_bow",
    "rnn": "torch_rnn",
    "gru": "torch_rnn",
    "transformer": "torch_transformer",
    "wavenet": "torch_wavenet",
}
