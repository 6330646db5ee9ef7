"""Fair side-by-side timing, each framework in its own process: the protocol every benchmark uses.

A worker (`python -m benchmarks.harness`) builds a timed loop `factory(**args) -> (run, info)`,
run(n) -> (units, value[, seconds]); `compare` warms the sides up, calibrates them and alternates them
repeat by repeat (median, min-max); `one_call` runs one call in a fresh worker, `command` times a whole
command, `alternate` takes turns over such runs. Within `sharing()` (--quick) benchmarks share one
worker per process name. BENCH_INLINE=1 runs workers in this process; BENCH_KEEP_XLA=1 (the tests) lets
every process keep the caller's XLA_FLAGS and compilation cache, so it loads what the caller compiled.
Wire: one JSON line each way ({"op": "setup" | "run" | "call" | "rss" | "quit", ...}).
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
import traceback

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
    """One worker process (in this process where log_dir is None); `call(**request)` -> the answer."""

    def __init__(self, process: str, log_dir: str | None, env: dict | None = None):
        self.name, self.started, self.runs, self._proc = process, time.perf_counter(), {}, None
        if log_dir is not None:
            self._log = open(os.path.join(log_dir, f"{process}-{id(self)}.log"), "w")
            self._proc = subprocess.Popen([sys.executable, "-m", "benchmarks.harness"], cwd=ROOT,
                                          text=True, env=process_env(process, env), stdin=subprocess.PIPE,
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
            with open(self._log.name) as f:
                raise WorkerError(f"worker {self.name} died (exit {self._proc.poll()}): {f.read()[-800:]}")
        if "error" in (answer := json.loads(line)):
            raise WorkerError(f"{self.name}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.write('{"op": "quit"}\n')
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self._proc.kill()
        self._log.close()


class Pool:
    """Worker processes by name, started on first use; `with Pool() as p:` ends them."""

    current: Pool | None = None  # the pool every benchmark shares within `sharing()`

    def __init__(self):
        self._dir = None if os.environ.get("BENCH_INLINE") else tempfile.TemporaryDirectory(prefix="bench-workers-")
        self.workers: dict[str, Worker] = {}

    def __getitem__(self, process: str) -> Worker:
        if process not in self.workers:
            self.workers[process] = self.fresh(process)
        return self.workers[process]

    def fresh(self, process: str, env: dict | None = None) -> Worker:
        """A new worker (the caller closes it)."""
        return Worker(process, self._dir and self._dir.name, env)

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: w.call(op="rss")["peak_rss_mb"] for name, w in self.workers.items()}

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers.values():
            worker.close()
        if self._dir:
            self._dir.cleanup()


@contextlib.contextmanager
def pool():
    """The pool shared within `sharing()`, else a new one, ended on exit."""
    with contextlib.nullcontext(Pool.current) if Pool.current else Pool() as p:
        yield p


@contextlib.contextmanager
def sharing():
    """One worker per process name for everything inside (the suite's --quick: fewer process starts)."""
    with Pool() as p:
        Pool.current = p
        try:
            yield p
        finally:
            Pool.current = None


def one_call(process: str, factory: str, args: dict, *, env: dict | None = None) -> dict:
    """`factory(**args)` in a fresh worker `process`: its answer and "wall_s", the process's whole life."""
    with pool() as p:
        worker = p.fresh(process, env)
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
    """A timed loop built by `factory(**args)` in worker `process` (with `env` on top, fresh runs only)."""

    process: str
    factory: str
    args: dict = dataclasses.field(default_factory=dict)
    first_n: int = 10  # units of the first calibration run
    n: int | None = None  # fixed units per repeat (no calibration)
    env: dict | None = None


def compare(p: Pool, sides: dict[str, Side], *, repeats: int = 5, seconds: float = 1.0,
            fresh: bool = False) -> dict[str, dict]:
    """Time every side, alternating (`fresh`: a process per repeat); {side: figures}: "rate" (median units/s),
    "min", "max", "rates", "n", "repeats", "value", the factory's info, "process_s", or {"error": why}."""
    out: dict[str, dict] = {name: {"rates": [], "process_s": []} for name in sides}
    units: dict[str, int] = {}

    def attempt(name: str, worker: Worker, setup: bool) -> None:
        try:
            if setup:
                out[name].update(_setup(worker, name, sides[name], seconds, units))
            if fresh or not setup:
                answer = worker.call(op="run", side=name, n=units[name])
                out[name]["rates"].append(answer["units"] / answer["seconds"])
                out[name].update(value=answer["value"], n=units[name])
        except WorkerError as e:
            out[name] = {"error": str(e)}
            print(f"  ({name}: {e})", file=sys.stderr)
    for name in () if fresh else sides:
        attempt(name, p[sides[name].process], True)
    for r in range(repeats):
        for name in _turn([n for n in sides if "error" not in out[n]], r):
            worker = p.fresh(sides[name].process, sides[name].env) if fresh else p[sides[name].process]
            attempt(name, worker, fresh)
            if fresh:
                worker.close()
                out[name].get("process_s", []).append(time.perf_counter() - worker.started)
    for fig in out.values():
        if fig.get("rates"):
            fig.update(rate=statistics.median(fig["rates"]), min=min(fig["rates"]), max=max(fig["rates"]),
                       repeats=len(fig["rates"]))
    return out


def _setup(worker: Worker, name: str, side: Side, seconds: float, units: dict) -> dict:
    """Build the side in `worker`, warm it up, and set its units per repeat (calibrated once)."""
    info = worker.call(op="setup", side=name, factory=side.factory, args=side.args)
    n = units.get(name) or side.n
    if n is None:
        n = side.first_n
        while (answer := worker.call(op="run", side=name, n=n))["seconds"] < min(0.25, seconds / 2) and n < 1e8:
            n *= 4
        n = max(1, round(n * seconds / answer["seconds"]))
    if side.n is None:
        worker.call(op="run", side=name, n=n)  # a warm-up at the final size
    units[name] = n
    return info


def mode_of(quick: bool, mode: str | None) -> str:
    """A benchmark's size: "full", "quick" or "toy" (the smoke tests' $BENCH_MODE)."""
    return mode or ("quick" if quick else "full")


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
    for line in sys.stdin:
        if (request := json.loads(line))["op"] == "quit":
            break
        try:
            answer = _handle(request, runs)
        except Exception as e:  # noqa: BLE001 (reported to the caller, which decides)
            answer = {"error": f"{type(e).__name__}: {e}", "traceback": "".join(traceback.format_exception(e)[-3:])}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    serve()
