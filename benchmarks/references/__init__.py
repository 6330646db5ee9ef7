"""PyTorch eager reference training loops for the speed benchmarks.

Each module here imports torch at top level; torch is not a project dependency but comes
from the optional ``bench`` extra (on the project's machines install the CPU build with
``pip install torch==2.13.0``). The benchmark runner imports these modules only when torch
is importable.
"""

REFERENCES: dict[str, str] = {  # registry model name -> module here with loops(X, Y, config, *, batch_size, seed)
    "transformer": "torch_transformer",
    "wavenet": "torch_wavenet",
}
