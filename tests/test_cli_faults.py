"""Issue 11: every user mistake and every fault ends in one clear line; no run loses or misrecords work.

The tests about the process itself (signals, a closed pipe, /dev/full as standard output, peak memory,
the umask, a FIFO, the lock of a killed process, an address-space limit) run the real command in a
subprocess (`python -m makemore_jax ...`); the others call cli.main in this process, which skips the
seconds of importing JAX again. The checkpoints they start from are made in-process with train_model.
"""

import builtins
import errno
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ONE_CPU_THREAD, run_cli
from makemore_jax import checkpoint
from makemore_jax.cli import main
from makemore_jax import load_run, train_model


def cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    streams = {} if "stdout" in kwargs else {"capture_output": True}
    return subprocess.run([sys.executable, "-m", "makemore_jax", *map(str, args)], text=True, timeout=timeout,
                          **streams, **kwargs)


def run_main(capsys, *args) -> subprocess.CompletedProcess:
    """`makemore-jax ARGS` as cli.main in this process (an argparse refusal's SystemExit gives its status):
    the status and what it wrote to standard output and standard error, as cli() returns them."""
    capsys.readouterr()
    return subprocess.CompletedProcess(list(args), *run_cli(capsys, *args))


def one_error_line(proc, status=2) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def names(bundled_words):
    return bundled_words[:1000]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, names):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory, data_file):
    """An mlp trained 200 steps with seed 7 (checkpoint, checkpoint.json, metrics.jsonl)."""
    out = str(tmp_path_factory.mktemp("runs") / "mlp")
    train_model("mlp", data=data_file, steps=200, chunk_size=100, n_hidden=16, seed=7, out=out)
    return out


@pytest.fixture(scope="module")
def bigram_dir(tmp_path_factory, data_file):
    out = str(tmp_path_factory.mktemp("runs") / "bigram")
    train_model("bigram", data=data_file, out=out)
    return out


@pytest.fixture()
def mlp_copy(mlp_dir, tmp_path):
    return shutil.copytree(mlp_dir, tmp_path / "mlp")


def snapshot(folder) -> dict:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if name != ".makemore-jax.lock"}  # a killed run leaves the lock file, which holds no lock


def in_process(capsys, *argv) -> tuple[int, str]:
    """main(argv) in this process: (exit status, its one stderr line)."""
    code = main([*map(str, argv)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return code, err[0]


class FullDisk(io.RawIOBase):
    """A file on a disk that fills up after `room` bytes: writes then raise ENOSPC, as the kernel's would."""

    def __init__(self, room: int = 100):
        self.room = room

    def writable(self):
        return True

    def write(self, data):
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(len(data), self.room)
        self.room -= n
        return n


# ----------------------------------------------------------------------------- hangs and crashes


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path, data_file, capsys):
    out = tmp_path / "huge"
    proc = run_main(capsys, "train", "--n-hidden", 1_000_000_000, "--steps", 100, "--data", data_file, "--out", out)
    line = one_error_line(proc)
    assert "needs about" in line and "GB" in line and "available" in line
    assert not out.exists()


XLA_OUT_OF_MEMORY = """
import resource, sys
import jax.numpy as jnp
jnp.zeros(1).block_until_ready()  # JAX's own address space first: the limit is set relative to it
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 10**9, resource.RLIM_INFINITY))
from makemore_jax import memory
memory.available_bytes = lambda: 1 << 50  # the estimate is told there is plenty
from makemore_jax.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmSize from /proc")
def test_an_xla_allocation_failure_ends_in_one_line(tmp_path, data_file):
    # 1 GB of address space beyond JAX's own: the 0.7 GB of parameters fit, the 1.75 GB
    # temporary buffer of their initialisation does not, and XLA reports it. (An *output*
    # buffer that fails to allocate makes XLA wait forever instead, an upstream bug: the
    # estimate counts outputs exactly, so only memory taken by others meanwhile gets there,
    # and Ctrl-C still works, see below.)
    proc = subprocess.run([sys.executable, "-c", XLA_OUT_OF_MEMORY, "train", "--n-hidden", "3000000", "--steps", "10",
                           "--data", data_file, "--out", str(tmp_path / "o"), "-n", "0", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert "out of memory" in one_error_line(proc, status=1)


def test_ctrl_c_during_compilation_exits_130_every_time_and_keeps_the_checkpoint(mlp_copy, data_file):
    before = snapshot(mlp_copy)
    rng = random.Random(0)
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "makemore_jax", "train", "--resume", "--steps", "100000",
                                 "--data", data_file, "--out", str(mlp_copy), "-n", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "parameters" in proc.stdout.readline()  # printed just before the training chunk compiles
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, (attempt, err)
    assert snapshot(mlp_copy) == before  # no chunk finished: the checkpoint and the log are untouched
    assert load_run(str(mlp_copy)).sample(3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_a_fifo_with_a_bom_is_read_once_and_hashed(tmp_path, names):
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    payload = ("\ufeff" + "\n".join(names[:300]) + "\n").encode("utf-8")  # a BOM, as Windows editors write

    def write_once():
        with open(fifo, "wb") as f:
            f.write(payload)

    threading.Thread(target=write_once, daemon=True).start()
    out = tmp_path / "o"
    proc = cli("train", "--model", "bigram", "--data", fifo, "--out", out, "-n", "0", timeout=60)
    assert proc.returncode == 0, proc.stderr
    meta = strict_json((out / "checkpoint.json").read_text())
    assert meta["data_sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(meta["vocab"]) == 27 and "\ufeff" not in meta["vocab"]  # the BOM is no character


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_at_the_checkpoint_says_which_file_and_which_checkpoint_is_intact(mlp_copy, data_file,
                                                                                      monkeypatch, capsys):
    before = snapshot(mlp_copy)
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):  # atomic_write's temporary file lands on the full disk
        if "w" not in mode:
            return real_fdopen(fd, mode, *args, **kwargs)
        os.close(fd)
        return io.BufferedWriter(FullDisk(), buffer_size=16)

    monkeypatch.setattr(os, "fdopen", fdopen)
    code, line = in_process(capsys, "train", "--resume", "--steps", 300, "--data", data_file, "--out", mlp_copy,
                            "-n", 0, "--quiet")
    monkeypatch.undo()
    path = os.path.join(mlp_copy, "checkpoint.msgpack")
    assert code == 1 and line == (f"makemore-jax: error: cannot write {path}: No space left on device; the last "
                                  f"checkpoint, {path} (step 200), is intact")
    assert sorted(os.listdir(mlp_copy)) == sorted(before)  # no temporary file left behind
    assert {k: v for k, v in snapshot(mlp_copy).items() if k != "metrics.jsonl"} == {
        k: v for k, v in before.items() if k != "metrics.jsonl"}
    assert int(load_run(str(mlp_copy)).state.step) == 200


def test_a_full_disk_at_the_log_and_at_standard_output(tmp_path, data_file, bigram_dir, monkeypatch, capsys):
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if str(file).endswith("metrics.jsonl") and "a" in mode:
            return io.TextIOWrapper(io.BufferedWriter(FullDisk(room=0)), encoding="utf-8")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    out = tmp_path / "o"
    code, line = in_process(capsys, "train", "--steps", 20, "--chunk-size", 10, "--n-hidden", 8, "--data", data_file,
                            "--out", out, "-n", 0, "--quiet")
    monkeypatch.undo()
    assert code == 1 and line == (f"makemore-jax: error: cannot write {out / 'metrics.jsonl'}: No space left on "
                                  f"device; no checkpoint was saved in {out} yet")
    if os.path.exists("/dev/full"):  # a real device that answers every write with ENOSPC
        with open("/dev/full", "w") as full:
            proc = cli("sample", "--out", bigram_dir, "-n", 5000, stdout=full, stderr=subprocess.PIPE)
        assert one_error_line(proc, status=1) == "makemore-jax: error: cannot write standard output: No space left on device"


def test_a_full_disk_at_another_file_of_out_names_that_file_not_standard_output(mlp_copy, data_file, monkeypatch,
                                                                                  capsys):
    """Writes into --out beside the checkpoint and the log (the lock, TensorBoard's events) fail with
    OSErrors that carry no file name; the line names the file in --out all the same."""
    real_write = os.write

    def write(fd, data):  # the lock file's holder line lands on the full disk
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".makemore-jax.lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    code, line = in_process(capsys, "train", "--resume", "--steps", 300, "--data", data_file, "--out", mlp_copy,
                            "-n", 0, "--quiet")
    monkeypatch.undo()
    ckpt = os.path.join(mlp_copy, "checkpoint.msgpack")
    assert code == 1 and line == (f"makemore-jax: error: cannot write {os.path.join(mlp_copy, '.makemore-jax.lock')}: "
                                  f"No space left on device; the last checkpoint, {ckpt} (step 200), is intact")

    pytest.importorskip("tensorboardX")
    from tensorboardX import SummaryWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(SummaryWriter, "add_scalar", full)
    code, line = in_process(capsys, "train", "--resume", "--steps", 300, "--data", data_file, "--out", mlp_copy,
                            "-n", 0, "--quiet", "--tensorboard")
    monkeypatch.undo()
    assert code == 1 and line == (f"makemore-jax: error: cannot write {mlp_copy}: No space left on device; the last "
                                  f"checkpoint, {ckpt} (step 200), is intact")
    assert int(load_run(str(mlp_copy)).state.step) == 200


# ----------------------------------------------------------------------------- a closed pipe


@pytest.mark.parametrize("command, lines", [(("sample", "-n", "50000"), 2), (("eval",), 0)])
def test_a_closed_pipe_ends_quietly_with_status_141(bigram_dir, data_file, command, lines):
    extra = ("--data", data_file) if command[0] == "eval" else ()
    proc = subprocess.Popen([sys.executable, "-m", "makemore_jax", *command, "--out", bigram_dir, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = [proc.stdout.readline() for _ in range(lines)]  # `| head -2`; eval: a reader gone at once
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == "" and all(got), err


# ----------------------------------------------------------------------------- two runs, one folder

HOLD_THE_FOLDER = """
import sys, time
from makemore_jax.faults import FolderLock
FolderLock(sys.argv[1]).acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_run_into_a_folder_in_use_is_refused_and_a_killed_one_leaves_no_lock(mlp_copy, data_file, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_FOLDER, str(mlp_copy), "--the-holder's-argv"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        before = snapshot(mlp_copy)
        for argv in (("train", "--resume", "--steps", 300), ("train", "--overwrite", "--steps", 300),
                     ("sweep", "--lr", "0.1,0.2", "--steps", 10)):
            code, line = in_process(capsys, *argv, "--n-hidden", 16, "--data", data_file, "--out", mlp_copy)
            assert code == 2 and line.startswith(f"makemore-jax: error: {mlp_copy}: another run is writing there "
                                                 f"(pid {holder.pid} on {socket.gethostname()}: -c {mlp_copy} "
                                                 "--the-holder's-argv)"), (argv, line)
        assert snapshot(mlp_copy) == before
    finally:
        holder.kill()
        holder.wait()
    assert os.path.exists(mlp_copy / ".makemore-jax.lock")  # the file stays, its lock died with the holder
    assert main(["train", "--resume", "--steps", "300", "--data", data_file, "--out", str(mlp_copy), "-n", "0",
                 "--quiet"]) == 0
    assert sorted(os.listdir(mlp_copy)) == ["checkpoint.json", "checkpoint.msgpack", "metrics.jsonl"]


# ----------------------------------------------------------------------------- preemption

PREEMPTED = ("--steps", 6_000, "--chunk-size", 100, "--n-hidden", 16, "--seed", 3, "-n", 0)


def log_without_times(folder) -> list[dict]:
    return [{k: v for k, v in strict_json(line).items() if k != "time"}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_sigterm_saves_the_chunk_in_flight_and_resume_equals_a_straight_run(tmp_path, data_file, capsys):
    straight = tmp_path / "straight"
    assert main(["train", *map(str, PREEMPTED), "--data", data_file, "--out", str(straight), "--quiet"]) == 0
    for moment in ("compiling", "mid-run"):
        out = tmp_path / moment
        proc = subprocess.Popen([sys.executable, "-m", "makemore_jax", "train", *map(str, PREEMPTED), "--data",
                                 data_file, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "parameters" in proc.stdout.readline()  # printed just before the first chunk compiles
        if moment == "mid-run":
            assert proc.stderr.readline().startswith("step 600/6,000")  # a progress line every tenth
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        step = strict_json((out / "checkpoint.json").read_text())["step"]
        assert proc.returncode == 143 and err.splitlines()[-1] == (
            f"makemore-jax: terminated at step {step:,} of 6,000 (SIGTERM); the state is saved in "
            f"{out / 'checkpoint.msgpack'}; continue with --resume"), err
        assert 0 < step < 6_000 and (step >= 600) == (moment == "mid-run")
        proc = run_main(capsys, "train", "--resume", *PREEMPTED, "--data", data_file, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert (out / "checkpoint.msgpack").read_bytes() == (straight / "checkpoint.msgpack").read_bytes()
        assert log_without_times(out) == log_without_times(straight)


def test_checkpoints_are_spaced_by_time_as_well_as_steps(tmp_path, data_file, monkeypatch):
    saved = []
    save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda out, ts, meta: saved.append(int(ts.step)) or save(out, ts, meta))
    for seconds, expected in ((60.0, [300]), (1e-9, [100, 200, 300])):  # the default; a checkpoint every chunk
        saved.clear()
        train_model("mlp", data=data_file, steps=300, chunk_size=100, n_hidden=8, save_every_seconds=seconds,
                    out=str(tmp_path / str(seconds)))
        assert saved == expected


# ----------------------------------------------------------------------------- huge sample counts


def peak_rss_mb(*args) -> float:
    """The command's peak resident memory, run with XLA's own optimisation as users run it rather than the
    suite's compile-fast flags (conftest.py): this run is bound by executing the draws, not by compiling."""
    proc = subprocess.Popen([sys.executable, "-m", "makemore_jax", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "XLA_FLAGS": ONE_CPU_THREAD})
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the most of all children so far
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read()
    return usage.ru_maxrss / 1024  # kilobytes on Linux


@pytest.mark.skipif(not hasattr(os, "wait4") or sys.platform != "linux", reason="ru_maxrss in kB per child")
def test_sampling_streams_in_bounded_memory(bigram_dir):
    small, large = peak_rss_mb("sample", "--out", bigram_dir, "-n", 20_000), peak_rss_mb(
        "sample", "--out", bigram_dir, "-n", 200_000)
    assert large - small < 50, (small, large)


def test_streamed_samples_are_the_batches_of_fold_in_keys_and_counted_right(bigram_dir, capsys):
    import jax

    from makemore_jax.run import SAMPLE_BATCH
    from makemore_jax.sample import decode, novelty, sample_ids
    n = 2 * SAMPLE_BATCH + 5_000
    proc = run_main(capsys, "sample", "--out", bigram_dir, "-n", n, "--seed", 5,
                    "--temperature", 30)  # wild: empty names too
    assert proc.returncode == 0, proc.stderr
    *lines, summary = proc.stdout.splitlines()
    run = load_run(bigram_dir)
    expected = []
    for b, size in enumerate((SAMPLE_BATCH, SAMPLE_BATCH, 5_000)):  # batch b drawn with fold_in(key(seed), b)
        ids = sample_ids(run.model, run.state.params, run.state.model_state, jax.random.fold_in(jax.random.key(5), b),
                         n=size, block_size=run.config.block_size, max_len=2 * run.info["max_word_len"],
                         temperature=30.0, config=run.config)
        expected += decode(jax.device_get(ids), run.vocab)
    assert lines == [name or "(empty name)" for name in expected]
    assert run.sample(n, seed=5, temperature=30) == expected
    empty = expected.count("")
    assert empty > 0 and summary == (f"({n} samples, {novelty(expected, run.train_words):.0%} not in the training "
                                     f"set; {empty} empty, shown as (empty name))")


# ----------------------------------------------------------------------------- one line, not a traceback


def test_one_word_is_refused_and_five_train_with_empty_splits_said(tmp_path, capsys):
    one, five = tmp_path / "one.txt", tmp_path / "five.txt"
    one.write_text("emma\n")
    five.write_text("emma\nolivia\nava\nisabella\nsophia\n")
    assert "too few" in one_error_line(run_main(capsys, "train", "--model", "bigram", "--data", one,
                                                "--out", tmp_path / "a"))
    proc = run_main(capsys, "train", "--model", "bigram", "--data", five, "--out", tmp_path / "b", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert "dev empty" in proc.stdout and "loss (nats, bits/char): train" in proc.stdout


def test_an_unusable_out_is_refused_before_the_data_is_read(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    missing = tmp_path / "missing.txt"  # would fail too, later
    assert "is a file" in one_error_line(run_main(capsys, "train", "--data", missing, "--out", a_file))
    assert "cannot be created" in one_error_line(run_main(capsys, "train", "--data", missing, "--out", a_file / "sub"))


def test_sample_from_a_checkpoint_without_max_word_len(bigram_dir, tmp_path, capsys):
    meta, raw = checkpoint.load(bigram_dir)
    del meta["max_word_len"]
    run = load_run(bigram_dir)
    checkpoint.save(str(tmp_path), run.state, {k: v for k, v in meta.items() if k not in ("format", "step")})
    proc = run_main(capsys, "sample", "--out", tmp_path, "-n", 4, "--quiet")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 4, proc.stderr


# ----------------------------------------------------------------------------- wrong or lost results


def test_a_huge_learning_rate_stops_with_exit_1_and_strict_json(tmp_path, data_file, capsys):
    out = tmp_path / "lr"
    proc = run_main(capsys, "train", "--lr", "1e6", "--steps", 40, "--chunk-size", 4, "--n-hidden", 8,
                    "--data", data_file, "--out", out, "-n", 0, "--quiet")
    line = one_error_line(proc, status=1)
    assert "training diverged: the loss" in line and "more than 10x the initial" in line and "last good" in line
    meta = strict_json((out / "checkpoint.json").read_text())
    assert meta["step"] < 40 and load_run(str(out)).evaluate()["dev"] < 4  # the kept state is a good one


def test_json_holds_null_where_a_loss_is_infinite(tmp_path, data_file, capsys):
    out = tmp_path / "inf"  # no smoothing: bigrams unseen in training have probability 0 on dev
    proc = run_main(capsys, "train", "--model", "bigram", "--smoothing", 0, "--data", data_file, "--out", out, "-n", 0)
    assert proc.returncode == 0, proc.stderr
    results = strict_json((out / "checkpoint.json").read_text())["results"]
    assert results["dev_loss"] is None and results["train_loss"] > 0


def test_resume_keeps_the_seed_counts_this_runs_steps_and_cuts_the_log(mlp_copy, data_file, capsys):
    log = mlp_copy / "metrics.jsonl"
    with open(log, "a") as f:  # an earlier resume, interrupted after logging past the checkpoint
        f.write('{"step": 300, "loss": 2.5}\n{"step": 400, "loss": 2.4}\n')
    proc = run_main(capsys, "train", "--resume", "--steps", 300, "--data", data_file, "--out", mlp_copy, "-n", 0,
                    "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "trained 100 steps (now at step 300)" in proc.stdout
    assert strict_json((mlp_copy / "checkpoint.json").read_text())["seed"] == 7
    assert [strict_json(line)["step"] for line in log.read_text().splitlines()] == [100, 200, 200, 300, 300]
    line = one_error_line(run_main(capsys, "train", "--resume", "--steps", 300, "--data", data_file, "--out", mlp_copy))
    assert "at step 300 already" in line and "--steps" in line


def test_an_existing_run_needs_resume_or_overwrite(mlp_copy, data_file, capsys):
    before = snapshot(mlp_copy)
    line = one_error_line(run_main(capsys, "train", "--model", "bigram", "--data", data_file, "--out", mlp_copy))
    assert "holds a checkpoint already" in line and "--resume" in line and "--overwrite" in line
    assert snapshot(mlp_copy) == before  # metrics.jsonl too
    proc = run_main(capsys, "train", "--model", "bigram", "--data", data_file, "--out", mlp_copy, "--overwrite",
                    "-n", 0)
    assert proc.returncode == 0 and sorted(os.listdir(mlp_copy)) == ["checkpoint.json", "checkpoint.msgpack"]


def test_damaged_arrays_fail_their_checksum(mlp_copy, capsys):
    path = mlp_copy / "checkpoint.msgpack"
    blob = bytearray(path.read_bytes())
    table = load_run(str(mlp_copy)).state.params["C"]  # the embedding's bytes, somewhere in the file
    at = bytes(blob).index(bytes(memoryview(__import__("numpy").asarray(table)).cast("B")))
    blob[at + 5] ^= 0x40
    path.write_bytes(bytes(blob))
    assert "checksum" in one_error_line(run_main(capsys, "sample", "--out", mlp_copy))


def test_other_data_is_an_error_for_resume_and_a_warning_for_eval(mlp_copy, tmp_path, names, capsys):
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(names)) + "\n")  # same characters, other file
    line = one_error_line(run_main(capsys, "train", "--resume", "--steps", 300, "--data", other, "--out", mlp_copy))
    assert "not the data the checkpoint" in line
    proc = run_main(capsys, "eval", "--data", other, "--out", mlp_copy)
    assert proc.returncode == 0 and "warning:" in proc.stderr and "not the data this run was trained on" in proc.stderr


# ----------------------------------------------------------------------------- smaller things


def test_files_honour_the_umask(tmp_path, data_file):
    out = tmp_path / "perm"
    proc = cli("train", "--model", "bigram-nn", "--steps", 5, "--data", data_file, "--out", out, "-n", 0, "--quiet",
               umask=0o027)
    assert proc.returncode == 0, proc.stderr
    assert {name: os.stat(out / name).st_mode & 0o777 for name in os.listdir(out)} == {
        "checkpoint.msgpack": 0o640, "checkpoint.json": 0o640, "metrics.jsonl": 0o640}


def test_messages_name_the_flags_as_typed(tmp_path, data_file, capsys):
    # more cases run in-process in test_cli.py::test_bad_flags_give_one_line_and_status_2
    assert "--n-hidden must be at least 1" in one_error_line(run_main(capsys, "train", "--n-hidden", 0,
                                                                      "--data", data_file, "--out", tmp_path))


def test_help_says_meanings_defaults_choices_and_where_to_look(tmp_path, data_file, capsys):
    from makemore_jax.cli import build_parser
    parser = build_parser()
    top = parser.format_help()
    assert "examples:" in top and "makemore-jax train --model" in top and "COMMAND --help" in top
    train_parser = next(a for a in parser._subparsers._group_actions).choices["train"]
    train = " ".join(train_parser.format_help().split())
    assert "{unit,scaled,fan-in,kaiming,gpt2,pytorch}" in train and "(lecture 2, initial loss ~27)" in train
    assert "transformer: pytorch = torch's layer defaults" in train
    assert "(default bigram-nn: 0.0)" in train and "(default mlp, mlp-bn: 200; mlp-deep: 100;" in train
    assert "under --resume the run keeps its own seed and this changes only the samples" in train
    proc = run_main(capsys, "train", "--model", "bigram", "--steps", 5, "--lr", 3, "--optimizer", "adamw",
                    "--data", data_file, "--out", tmp_path, "-n", 0)
    assert proc.returncode == 0 and "fitted in closed form; it ignores --steps, --optimizer, --lr" in proc.stderr


def test_empty_samples_are_shown_and_counted(bigram_dir, capsys):
    proc = run_main(capsys, "sample", "--out", bigram_dir, "-n", 300,
                    "--temperature", 50)  # near uniform: ~1/27 end at once
    lines = proc.stdout.splitlines()
    shown = lines[:-1].count("(empty name)")
    assert proc.returncode == 0 and "" not in lines and shown >= 3
    assert f"{shown} empty, shown as (empty name)" in lines[-1]
