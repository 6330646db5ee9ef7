"""Fair side-by-side timing, each framework in its own process: the protocol every benchmark uses.

A worker (`python -m benchmarks.harness`, one JSON line each way) builds a timed loop `factory(**args) ->
(run, info)`, run(n) -> (units, value[, seconds]); `compare` calibrates the sides and alternates them repeat
by repeat; `one_call` runs one call in a fresh worker, `command` one whole command, `alternate` takes turns
over such runs. BENCH_INLINE=1 runs workers in this process; BENCH_KEEP_XLA=1 (the tests) keeps the caller's
XLA_FLAGS and compilation cache in every process, so it loads what the caller compiled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.machine import ONE_XLA_THREAD, ROOT

XLA_SETTINGS = ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")  # what BENCH_KEEP_XLA keeps as the caller has it


def process_env(process: str, extra: dict | None = None) -> dict[str, str]:
    """The environment of a process by name, `extra` on top: "jax..." one XLA thread as the CLI (not
    "...xla-threads"), "torch...-<k>t" k intra-op threads, any other name (a command) its own XLA setting."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    if process.startswith("torch"):
        threads = process.rsplit("-", 1)[-1].rstrip("t")
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TORCHINDUCTOR_COMPILE_THREADS="1")
    if os.environ.get("BENCH_KEEP_XLA"):
        return {**env, **{k: v for k, v in (extra or {}).items() if k not in XLA_SETTINGS}}
    env.pop("XLA_FLAGS", None)
    one_thread = process.startswith("jax") and "xla-threads" not in process
    return {**env, **({"XLA_FLAGS": ONE_XLA_THREAD} if one_thread else {}), **(extra or {})}


class WorkerError(RuntimeError):
    """A worker died, or a side or a command failed (the message says why)."""


class Worker:
    """One worker process (with BENCH_INLINE, this process); `call(**request)` -> the answer."""

    def __init__(self, process: str, env: dict | None = None):
        self.name, self.started, self.runs, self._proc = process, time.perf_counter(), {}, None
        if not os.environ.get("BENCH_INLINE"):
            self._log = tempfile.TemporaryFile("w+")
            self._proc = subprocess.Popen([sys.executable, "-m", "benchmarks.harness"], cwd=ROOT, text=True,
                                          env=process_env(process, env), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._log)

    def call(self, **request) -> dict:
        if self._proc is None:
            try:
                return _handle(request, self.runs)
            except Exception as e:  # noqa: BLE001 (as a worker process answers)
                raise WorkerError(f"{self.name}: {type(e).__name__}: {e}") from e
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self._log.seek(0)
            raise WorkerError(f"worker {self.name} died (exit {self._proc.poll()}): {self._log.read()[-800:]}")
        if "error" in (answer := json.loads(line)):
            raise WorkerError(f"{self.name}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()  # the worker's loop ends
            self._proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self._proc.kill()
        self._log.close()


class Pool(dict):
    """Workers by process name, started on first use; `with Pool() as p:` ends them."""

    def __missing__(self, process: str) -> Worker:
        self[process] = Worker(process)
        return self[process]

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: w.call(op="rss")["peak_rss_mb"] for name, w in self.items()}

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.values():
            worker.close()


SHARED: list[Pool] = []  # within `sharing()`: the one pool every benchmark uses


@contextlib.contextmanager
def pool():
    """The pool of an enclosing `sharing()`, else a new one, ended on exit."""
    with contextlib.nullcontext(SHARED[-1]) if SHARED else Pool() as p:
        yield p


@contextlib.contextmanager
def sharing():
    """One worker per process name for everything inside (the suite's --quick: fewer process starts)."""
    with Pool() as p:
        SHARED.append(p)
        try:
            yield p
        finally:
            SHARED.pop()


def one_call(process: str, factory: str, args: dict, *, env: dict | None = None) -> dict:
    """`factory(**args)` in a fresh worker `process`: its answer and "wall_s", the process's whole life."""
    worker = Worker(process, env)
    try:
        answer = worker.call(op="call", factory=factory, args=args)
    finally:
        worker.close()
    return {**answer, "wall_s": time.perf_counter() - worker.started}


def train_command(model: str, out: str, *flags: str) -> list[str]:
    """`makemore-jax train --model MODEL` as a user runs it, quiet, no samples, into `out`."""
    return [sys.executable, "-m", "makemore_jax", "train", "--model", model, "--out", out, "--overwrite", "--quiet",
            "-n", "0", *flags]


def command(argv: list[str], *, out: str | None = None, env: dict | None = None, check: bool = True) -> dict:
    """One fresh process of `argv` (`env` on top): "wall_s", "status", "tail" (its last output line) and
    "results" (the losses `makemore-jax train` saved in `out`'s checkpoint.json)."""
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env=process_env("command", env))
    row = {"status": proc.returncode, "wall_s": time.perf_counter() - t,
           "tail": (proc.stdout + proc.stderr).strip().splitlines()[-1:]}
    if check and proc.returncode:
        raise WorkerError(f"{' '.join(argv[:8])} ...: exit {proc.returncode}: {proc.stderr[-800:]}")
    if out and os.path.isfile(meta := os.path.join(out, "checkpoint.json")):
        with open(meta) as f:
            row["results"] = json.load(f).get("results")
    return row


def _turn(names: list, i: int) -> list:
    """`names` rotated by i: who goes first takes turns."""
    return names[i % len(names):] + names[:i % len(names)] if names else []


def alternate(runs: dict, keys) -> dict[str, list]:
    """{side: [runs[side](key) for each key]}, the sides taking turns to go first."""
    rows = {side: [] for side in runs}
    for i, key in enumerate(keys):
        for side in _turn(list(runs), i):
            rows[side].append(runs[side](key))
    return rows


@dataclasses.dataclass(frozen=True)
class Side:
    """A timed loop built by `factory(**args)` in worker `process`."""

    process: str
    factory: str
    args: dict = dataclasses.field(default_factory=dict)
    first_n: int = 10  # units of the first calibration run
    n: int | None = None  # fixed units per repeat (no calibration)


def summary(rates: list[float]) -> dict:
    """"rate" (the median), "min", "max", "repeats" and "rates" of a side's repeats."""
    return {"rate": statistics.median(rates), "min": min(rates), "max": max(rates), "repeats": len(rates),
            "rates": rates}


def compare(p: Pool, sides: dict[str, Side], *, repeats: int = 5, seconds: float = 1.0) -> dict[str, dict]:
    """Time every side in its worker, alternating repeat by repeat; {side: figures}: its `summary` in units/s,
    "n" (units per repeat), "value", the factory's info, or {"error": why}."""
    out: dict[str, dict] = {}

    def guarded(name: str, step) -> None:
        try:
            step(p[sides[name].process])
        except WorkerError as e:
            out[name] = {"error": str(e)}
            print(f"  ({name}: {e})", file=sys.stderr)

    def repeat(name: str, worker: Worker) -> None:
        answer = worker.call(op="run", side=name, n=out[name]["n"])
        out[name]["rates"].append(answer["units"] / answer["seconds"])
        out[name]["value"] = answer["value"]
    for name in sides:
        guarded(name, lambda worker: out.update({name: {**_setup(worker, name, sides[name], seconds), "rates": []}}))
    for r in range(repeats):
        for name in _turn([n for n in sides if "error" not in out[n]], r):
            guarded(name, lambda worker: repeat(name, worker))
    for fig in out.values():
        fig.update(summary(fig["rates"]) if fig.get("rates") else {})
    return out


def _setup(worker: Worker, name: str, side: Side, seconds: float) -> dict:
    """Build the side in `worker`, warm it up, calibrate its units per repeat: its info and "n"."""
    info = worker.call(op="setup", side=name, factory=side.factory, args=side.args)
    if side.n is not None:
        return {**info, "n": side.n}
    n = side.first_n
    while (answer := worker.call(op="run", side=name, n=n))["seconds"] < min(0.25, seconds / 2) and n < 1e8:
        n *= 4
    n = max(1, round(n * seconds / answer["seconds"]))
    worker.call(op="run", side=name, n=n)  # a warm-up at the final size
    return {**info, "n": n}


def torch_threads(mode: str) -> tuple[int, ...]:
    """The PyTorch thread counts a mode times (the faster counts): 1 and 2, or 1 in a short run."""
    return (1, 2) if mode == "full" else (1,)


def thread_sides(label: str, factory: str, args: dict, threads, process: str = "torch", **side) -> dict:
    """One PyTorch side per thread count: {label.format(threads="2 threads", t=2): Side(f"{process}-2t", ...)}."""
    return {label.format(threads=f"{t} thread{'s' * (t > 1)}", t=t): Side(
        f"{process}-{t}t", factory, {**args, "threads": t}, **{"first_n": 5, **side}) for t in threads}


def out_dir() -> str:
    """Where benchmarks write their files ($BENCH_OUT, the suite's --out)."""
    os.makedirs(out := os.environ.get("BENCH_OUT", os.path.join("out", "bench")), exist_ok=True)
    return out


def best(figures: dict[str, dict], names) -> tuple[str | None, dict | None]:
    """The fastest of the named sides that ran: (name, figures)."""
    ran = [(figures[n]["rate"], n) for n in names if "rate" in figures.get(n, {})]
    return (max(ran)[1], figures[max(ran)[1]]) if ran else (None, None)


def ratio(a: dict | None, b: dict | None) -> float | None:
    """Median rate of a over median rate of b, None where either is missing."""
    return a["rate"] / b["rate"] if a and b and "rate" in a and "rate" in b else None


def rate_cell(figures: dict | None) -> str:
    """'12,345 (11,000-13,000)' from a side's figures, or why it is missing."""
    if not figures or "rate" not in figures:
        return "failed" if figures else "—"
    return f"{figures['rate']:,.0f} ({figures['min']:,.0f}-{figures['max']:,.0f})"


def ratio_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def markdown(header: str, rows) -> str:
    """Print a markdown table and return its text: `header` "a | b:" (a trailing ':' right-aligns the column)."""
    names = [h.strip() for h in header.split("|")]
    text = "\n".join(["| " + " | ".join(n.rstrip(":") for n in names) + " |",
                      "|" + "".join("---:|" if n.endswith(":") else "---|" for n in names),
                      *("| " + " | ".join(map(str, row)) + " |" for row in rows)])
    print(text)
    return text


def table(figures: dict[str, dict], base: str, unit: str, rss: dict | None = None,
          processes: dict[str, str] | None = None) -> None:
    """One row per side: median (min-max) `unit`, the base side's ratio to it, set-up s, first call s, peak RSS."""
    def row(name, fig):
        if "rate" not in fig:
            return [name, f"failed: {fig.get('error', '?')[:120]}", "", "", "", ""]
        mib = (rss or {}).get((processes or {}).get(name))
        return [name, rate_cell(fig), ratio_cell(ratio(figures.get(base), fig)), f"{fig.get('setup_s', 0):.2f}",
                f"{fig.get('first_call_s', 0):.2f}", f"{mib:,.0f}" if mib else "—"]
    markdown(f"side | {unit} median (min-max): | {base.split(',')[0]} is: | set-up s: | first call s: | peak RSS MiB:",
             [row(name, fig) for name, fig in figures.items()])


def _load(path: str):
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def _handle(request: dict, runs: dict) -> dict:
    op, t = request["op"], time.perf_counter()
    if op == "setup":
        run, info = _load(request["factory"])(**request.get("args", {}))
        setup_s, t = time.perf_counter() - t, time.perf_counter()
        run(1)
        runs[request["side"]] = run
        return {"setup_s": setup_s, "first_call_s": time.perf_counter() - t, **info}
    if op == "run":
        units, value, *own = runs[request["side"]](int(request["n"]))
        return {"seconds": own[0] if own else time.perf_counter() - t, "units": units, "value": float(value)}
    if op == "call":
        return _load(request["factory"])(**request.get("args", {}))
    if op == "rss":  # ru_maxrss is in KiB on Linux
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    raise ValueError(f"unknown op {op!r}")


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from here on (python or C) goes to stderr
    sys.stdout = sys.stderr
    runs: dict = {}
    for line in sys.stdin:  # until the caller closes it
        request = json.loads(line)
        try:
            answer = _handle(request, runs)
        except Exception as e:  # noqa: BLE001 (reported to the caller, which decides)
            answer = {"error": f"{type(e).__name__}: {e}"}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    serve()
