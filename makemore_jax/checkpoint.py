"""Checkpoints: one msgpack file of plain arrays plus JSON metadata, written atomically.

    <out>/checkpoint.msgpack   {"meta": JSON text, "state": the TrainState as nested arrays}
    <out>/checkpoint.json      the same metadata, for people to read

Loading never unpickles anything: msgpack holds only dicts, lists, numbers and raw arrays.
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np
from flax import serialization

CHECKPOINT = "checkpoint.msgpack"
META = "checkpoint.json"
FORMAT = 1


class CheckpointError(ValueError):
    """A missing, corrupt or mismatched checkpoint."""


def atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _to_plain(ts):
    """Typed PRNG keys become their uint32 data, so the tree is plain arrays."""
    return ts.replace(key=jax.random.key_data(ts.key))


def save(out_dir: str, ts, meta: dict) -> str:
    """Save a TrainState and its metadata; returns the checkpoint's path."""
    meta = {"format": FORMAT, **meta, "step": int(ts.step)}
    state = serialization.to_state_dict(jax.device_get(_to_plain(ts)))
    path = os.path.join(out_dir, CHECKPOINT)
    atomic_write(path, serialization.msgpack_serialize({"meta": json.dumps(meta), "state": state}))
    atomic_write(os.path.join(out_dir, META), (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def load(out_dir: str) -> tuple[dict, dict]:
    """Read a checkpoint: (metadata, raw state dict); restore the state with `restore`."""
    path = os.path.join(out_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no checkpoint there; train one first with: makemore-jax train --out {out_dir}")
    try:
        with open(path, "rb") as f:
            raw = serialization.msgpack_restore(f.read())
        meta = json.loads(raw["meta"])
        state = raw["state"]
        if meta.get("format") != FORMAT or not isinstance(state, dict):
            raise ValueError
    except Exception:
        raise CheckpointError(f"{path}: corrupt or not a makemore-jax checkpoint") from None
    return meta, state


def restore(template, state: dict, path: str = CHECKPOINT):
    """Fill `template` (a freshly initialised TrainState) with the loaded arrays.

    Raises CheckpointError when the structure or any shape differs, naming the first leaf.
    """
    plain = _to_plain(template)
    expected = serialization.to_state_dict(plain)
    flat_expected = _flatten(expected)
    flat_loaded = _flatten(state)
    if flat_expected.keys() != flat_loaded.keys():
        diff = sorted(flat_expected.keys() ^ flat_loaded.keys())[0]
        raise CheckpointError(f"{path}: does not match this model and config (entry {diff!r} differs)")
    for name, value in flat_expected.items():
        if np.shape(value) != np.shape(flat_loaded[name]):
            raise CheckpointError(f"{path}: does not match this model and config "
                                  f"({name}: shape {np.shape(flat_loaded[name])}, expected {np.shape(value)})")
    restored = serialization.from_state_dict(plain, state)
    restored = jax.tree.map(lambda t, v: np.asarray(v, dtype=np.asarray(t).dtype), plain, restored)
    return restored.replace(key=jax.random.wrap_key_data(restored.key))


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: tree}
