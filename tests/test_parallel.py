"""Data parallel training on forced host devices, and one run over two processes.

The device count of a process is fixed when JAX starts, so these checks run in fresh
processes: tests/multi_device_run.py on 4 host devices, and two `makemore-jax train`
processes joined by jax.distributed on 127.0.0.1 (CPU collectives over gloo).
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from makemore_jax.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
RTOL = 2e-5  # float32: the sums over the batch are added in another order


def _env(devices: int) -> dict:
    return {**os.environ, "PYTHONPATH": os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"}


@pytest.fixture(scope="module")
def four_devices():
    done = subprocess.run([sys.executable, os.path.join(HERE, "multi_device_run.py")], env=_env(4),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _assert_leaves_close(a, b, rtol=1e-4, atol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_four_devices_train_as_one(four_devices):
    assert four_devices["devices"] == 4
    assert {"mlp-bn", "gpt"} <= set(four_devices["data_parallel"])
    for name, result in four_devices["data_parallel"].items():
        one, four = result["final_loss"]
        assert one == pytest.approx(four, rel=RTOL), name
        one, four = result["dev_loss"]
        assert one == pytest.approx(four, rel=RTOL), name
        _assert_leaves_close(*result["leaves"])  # mlp-bn: the running statistics are the global batch's


def test_data_parallel_chunk_all_reduces(four_devices):
    assert four_devices["all_reduce_in_chunk"]


def test_fsdp_trains_as_replicated(four_devices):
    result = four_devices["fsdp"]
    replicated, sharded = result["final_loss"]
    assert sharded == pytest.approx(replicated, rel=1e-5)
    replicated, sharded = result["dev_loss"]
    assert sharded == pytest.approx(replicated, rel=1e-5)
    _assert_leaves_close(*result["leaves"])
    vocab, n_embd = result["wte"]["shape"]
    assert result["wte"]["shard"] == [vocab, n_embd // 4]  # split along its axis that divides by 4, kept so


def test_fsdp_resumes_bit_identically(four_devices):
    for name in ("leaves", "opt_state"):  # gathered into a checkpoint after a chunk, placed again, trained on
        straight, resumed = four_devices["fsdp"]["resumed"][name]
        assert straight == resumed, name


def test_fsdp_memory_estimate_per_device(four_devices):
    est = four_devices["fsdp"]["memory"]
    state, params = est["state"], est["params"]  # every leaf of this gpt divides by 4 but the scalars (steps)
    activations = est["one_rows"] - state - params  # one device's rows: a quarter of the batch
    assert est["replicated"] == est["one_rows"]  # the batch split, the state and gradients whole
    assert est["fsdp"] == pytest.approx(state / 4 + params / 4 + params + activations, abs=64)
    assert est["fsdp"] < est["replicated"] < est["one"]


def test_fsdp_refuses_a_parameter_that_does_not_split(four_devices):
    assert four_devices["fsdp"]["refusal"] == ("--shard fsdp: no axis of C (shape (27, 10)) divides by 4 devices; use "
                                               "a device count that divides it, or leave --shard out")  # mlp's table


def test_fsdp_axis_is_the_largest_that_divides():
    from makemore_jax.parallel import ParallelError, check_fsdp, fsdp_axis, fsdp_spec
    assert fsdp_axis((768, 3, 12, 64), 4) == 0 and fsdp_axis((50304, 768), 8) == 0 and fsdp_axis((768, 3072), 8) == 1
    assert fsdp_axis((3, 12, 64), 8) == 2 and fsdp_axis((6, 6), 3) == 0 and fsdp_axis((), 4) is None
    assert fsdp_axis((27,), 4) is None and fsdp_spec((8, 12), 4) == jax.sharding.PartitionSpec(None, "data")
    shapes = {"wte": jax.ShapeDtypeStruct((28, 8), np.float32), "b": [jax.ShapeDtypeStruct((27,), np.float32)]}
    with pytest.raises(ParallelError, match=r"^--shard fsdp: no axis of b/0 \(shape \(27,\)\) divides by 4 devices"):
        check_fsdp(shapes, 4)


@pytest.mark.parametrize("which, n_runs", [("sweep", 3), ("gpt_sweep", 2)])  # mlp-bn on words, gpt on text
def test_sharded_sweep_runs_as_if_alone(four_devices, which, n_runs):
    result = four_devices[which]
    assert result["devices"] == 2 and len(result["runs"]) == n_runs
    for run in result["runs"]:
        alone, swept = run["dev_loss"]
        assert swept == pytest.approx(alone, rel=RTOL), run["label"]
        _assert_leaves_close(*run["leaves"])


# ----------------------------------------------------------------------------- two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_two(argv: list[str], out: str, timeout: float = 300) -> list[tuple[int, str]]:
    """`makemore-jax train` as processes 0 and 1 of one run: (status, stdout and stderr) of each.

    Both are killed if either hangs.
    """
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "makemore_jax", "train", *argv, "--out", out,
                               "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)],
                              env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, output) for p, output in zip(procs, outputs)]


def _two_processes(argv: list[str], out: str) -> None:
    """Both processes succeed, only process 0 writes, and neither prints gloo's connection lines."""
    results = _start_two(argv, out)
    for i, (status, output) in enumerate(results):
        assert status == 0, f"process {i}:\n{output[-3000:]}"
        assert "[Gloo]" not in output, f"process {i}:\n{output[-3000:]}"
    assert "wrote" in results[0][1] and "wrote" not in results[1][1]  # only process 0 writes


def _results(out: str) -> tuple[dict, list[float]]:
    meta = json.load(open(os.path.join(out, "checkpoint.json")))
    lines = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return meta["results"], [line["loss"] for line in lines if "loss" in line]


def test_two_processes_train_as_one(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text("\n".join(open(os.path.join(HERE, "..", "data", "names.txt")).read().split()[:600]) + "\n")
    common = ["--model", "mlp-bn", "--data", str(data), "--n-hidden", "16", "--chunk-size", "20",
              "--lr-decay-step", "30", "-n", "0"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    assert main(["train", *common, "--steps", "60", "--out", one, "--quiet"]) == 0

    _two_processes([*common, "--steps", "40"], two)  # no --devices: every device of both processes
    _two_processes([*common, "--steps", "60", "--resume", "--devices", "all"], two)  # both read process 0's checkpoint

    (results_one, losses_one), (results_two, losses_two) = _results(one), _results(two)
    assert set(results_one) == set(results_two) == {"train_loss", "dev_loss", "test_loss"}
    for split, value in results_one.items():
        assert results_two[split] == pytest.approx(value, rel=RTOL), split
    np.testing.assert_allclose(losses_two, losses_one, rtol=RTOL)
    capsys.readouterr()


def test_two_processes_refuse_a_device_count_short_of_all(tmp_path):
    data = tmp_path / "names.txt"
    data.write_text("\n".join(open(os.path.join(HERE, "..", "data", "names.txt")).read().split()[:100]) + "\n")
    for status, output in _start_two(["--data", str(data), "--devices", "1", "-n", "0"], str(tmp_path / "run")):
        assert status == 2 and output == ("makemore-jax: error: --devices 1: with 2 processes the mesh spans all 2 "
                                          "devices (leave --devices out, or use --devices all)\n"), output
    assert not os.path.exists(tmp_path / "run" / "checkpoint.msgpack")


# ----------------------------------------------------------------------------- flags and environment


def test_host_device_request_leaves_the_users_flag(monkeypatch):
    from makemore_jax.parallel import request_host_devices
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    request_host_devices(3)
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count=3"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=5")
    request_host_devices(3)
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=5"


def test_one_process_does_not_start_the_distributed_runtime(monkeypatch):
    from makemore_jax.parallel import ParallelError, cluster_size_from_env, initialize, processes_asked
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "8")  # an allocation's shell, not an srun step: one process
    assert cluster_size_from_env() == 1 and initialize() is False
    assert processes_asked(None) == 1 and processes_asked(2) == 2  # train's --devices: 1 by default, else all
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    assert cluster_size_from_env() == 4 and processes_asked(None) == 4 and processes_asked(1) == 1
    with pytest.raises(ParallelError, match="--process-id must be in"):
        initialize("127.0.0.1:1", 2, 2)
