"""Defaults that depend on the backend JAX runs on, resolved when a config is made."""

from __future__ import annotations

from typing import Any, NamedTuple


class PerBackend(NamedTuple):
    """A registry default that is `accelerator` on a GPU or TPU and `cpu` on a CPU (gpt2's dtype: bfloat16
    where the matrix units run it at several times float32's rate, float32 on a CPU, where it is no
    faster). `Model.make_config` resolves it on jax.default_backend(); the help shows both (str),
    without starting a backend."""

    accelerator: Any
    cpu: Any

    def resolve(self) -> Any:
        import jax
        return self.cpu if jax.default_backend() == "cpu" else self.accelerator

    def __str__(self) -> str:
        return f"{self.accelerator} on a GPU or TPU, {self.cpu} on a CPU"
