"""Checkpoints: one msgpack file of plain arrays plus JSON metadata, written atomically.

    <out>/checkpoint.msgpack   {"meta": JSON text, "state": the TrainState as nested arrays}
    <out>/checkpoint.json      the same metadata, for people to read

Loading never unpickles anything: msgpack holds only dicts, lists, numbers and raw arrays.
Format 2 adds `meta["state_sha256"]`, a checksum of every array (name, dtype, shape and
bytes), verified on loading; format 1 checkpoints (without it) still load. JSON is written
without NaN or infinity (they become null), so any parser reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading

import jax
import numpy as np
from flax import serialization

CHECKPOINT = "checkpoint.msgpack"
META = "checkpoint.json"
FORMAT = 2
READABLE_FORMATS = (1, 2)


WRITE_LOCK = threading.Lock()  # held while a file is written; whoever exits the process at once takes it first


class CheckpointError(ValueError):
    """A missing, corrupt or mismatched checkpoint."""


class WriteError(OSError):
    """A file could not be written (a full disk, a quota, a read-only folder); `path` names it."""

    def __init__(self, path: str, error: OSError):
        super().__init__(error.errno, error.strerror or str(error), path)
        self.path = path


def write_error(path: str, error: OSError) -> WriteError:
    """`error` as a WriteError naming `path` (a WriteError already is one)."""
    return error if isinstance(error, WriteError) else WriteError(path, error)


def atomic_write(path: str, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (under WRITE_LOCK).

    On any failure the temporary file is removed and `path` keeps its old contents; an
    OSError (e.g. a full disk) is raised as a WriteError naming `path`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with WRITE_LOCK:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
            try:
                os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
    except OSError as e:
        raise write_error(path, e) from None


def append_line(path: str, line: str) -> None:
    """Append one line of text to `path` (a log), raising a WriteError naming it on failure."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as e:
        raise write_error(path, e) from None


def saved_step(out_dir: str) -> int | None:
    """The step of the checkpoint in out_dir, or None when there is none that loads."""
    try:
        return int(load(out_dir)[0]["step"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def dumps_json(obj, **kwargs) -> str:
    """json.dumps with every NaN or infinite float written as null (strict JSON)."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def check_out_dir(out_dir: str) -> None:
    """Raise CheckpointError unless `out_dir` is (or can be made) a folder this process can write."""
    probe = os.path.abspath(out_dir)
    while not os.path.exists(probe):  # the nearest existing ancestor must be a writable folder
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "is a file" if probe == os.path.abspath(out_dir) else f"cannot be created: {probe} is a file"
        raise CheckpointError(f"{out_dir}: {what}, expected a folder for the checkpoint")
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        raise CheckpointError(f"{out_dir}: cannot write there ({probe}: {e.strerror})") from None


def state_sha256(state: dict) -> str:
    """Checksum of a state dict's arrays: every leaf's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, value in sorted(_flatten(state).items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _to_plain(ts):
    """Typed PRNG keys become their uint32 data, so the tree is plain arrays."""
    return ts.replace(key=jax.random.key_data(ts.key))


def save(out_dir: str, ts, meta: dict) -> str:
    """Save a TrainState and its metadata; returns the checkpoint's path."""
    state = serialization.to_state_dict(jax.device_get(_to_plain(ts)))
    meta = {"format": FORMAT, **meta, "step": int(ts.step), "state_sha256": state_sha256(state)}
    path = os.path.join(out_dir, CHECKPOINT)
    atomic_write(path, serialization.msgpack_serialize({"meta": dumps_json(meta), "state": state}))
    atomic_write(os.path.join(out_dir, META), (dumps_json(meta, indent=2, ensure_ascii=False) + "\n").encode())
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
        if meta.get("format") not in READABLE_FORMATS or not isinstance(state, dict):
            raise ValueError
        checksum = state_sha256(state) if meta["format"] >= 2 else None
    except Exception:
        raise CheckpointError(f"{path}: corrupt or not a makemore-jax checkpoint") from None
    if checksum is not None and checksum != meta.get("state_sha256"):
        raise CheckpointError(f"{path}: corrupt: the arrays do not match their checksum")
    return meta, state


def template_of(make_state):
    """The shapes and dtypes of the TrainState `make_state()` would build, nothing computed: the
    `restore` template (jax.eval_shape; typed PRNG keys as their uint32 data)."""
    return jax.eval_shape(lambda: _to_plain(make_state()))


def restore(template, state: dict, path: str = CHECKPOINT):
    """Fill `template` (`template_of(...)`: a TrainState of jax.ShapeDtypeStruct) with the loaded arrays.

    Raises CheckpointError when the structure or any shape differs, naming the first leaf.
    """
    flat_expected = leaves_by_name(template)
    flat_loaded = _flatten(state)
    if flat_expected.keys() != flat_loaded.keys():
        diff = sorted(flat_expected.keys() ^ flat_loaded.keys())[0]
        raise CheckpointError(f"{path}: does not match this model and config (entry {diff!r} differs)")
    for name, value in flat_expected.items():
        if tuple(value.shape) != np.shape(flat_loaded[name]):
            raise CheckpointError(f"{path}: does not match this model and config "
                                  f"({name}: shape {np.shape(flat_loaded[name])}, expected {tuple(value.shape)})")
    restored = serialization.from_state_dict(template, state)
    restored = jax.tree.map(lambda t, v: np.asarray(v, dtype=t.dtype), template, restored)
    return restored.replace(key=jax.random.wrap_key_data(restored.key))


def leaves_by_name(tree) -> dict:
    """A pytree's leaves by the names a checkpoint gives them: {"blocks/0/attn/c_attn/W": leaf, ...}."""
    return _flatten(serialization.to_state_dict(tree))


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: tree}
