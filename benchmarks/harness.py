"""Fair side-by-side timing: worker processes, alternating repeats, medians and ranges.

A comparison names its sides (timed loops), each built by a factory inside a worker process
(`python -m benchmarks.harness`, started here, never by hand). Sides of one framework share a
process; frameworks never do (PyTorch in a process where JAX has run is measurably slower).
Each side is warmed up and calibrated so one repeat lasts about `seconds` (or runs a fixed
`Side.n` units); then the repeats go round the sides in turn, the starting side rotated each
round, so slow drifts in the machine's load hit every side alike. With `fresh=True` every
repeat of every side runs in a new process (start-up and the first chunks, which a fresh
process runs slower, are then part of what varies). Figures: the median over the repeats with
the min-max range; set-up and compile time reported apart.

Worker protocol, one JSON line each way (the worker's fd 1 goes to stderr so nothing a
library prints corrupts the answers):
    {"op": "setup", "side", "factory": "module:function", "args"} -> {"setup_s", "first_call_s", **info}
        factory(**args) -> (run, info); run(n) -> (units done, value) or (units, value, seconds),
        the seconds replacing the measured wall time where the side times itself (compile apart).
    {"op": "run", "side", "n"} -> {"seconds", "units", "value"}
    {"op": "call", "factory", "args"} -> factory(**args);  {"op": "rss"} -> {"peak_rss_mb"};  {"op": "quit"}
"""

from __future__ import annotations

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


def process_env(process: str, extra: dict | None = None) -> dict[str, str]:
    """A worker's environment from its name: "jax..." runs XLA on one thread as the CLI (unless the
    name has "xla-threads"); "torch...-<k>t" has k intra-op threads. `extra` goes on top."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    env.pop("XLA_FLAGS", None)
    if process.startswith("jax") and "xla-threads" not in process:
        env["XLA_FLAGS"] = ONE_XLA_THREAD
    if process.startswith("torch"):
        threads = process.rsplit("-", 1)[-1].rstrip("t")
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TORCHINDUCTOR_COMPILE_THREADS="1")
    return {**env, **(extra or {})}


class WorkerError(RuntimeError):
    pass


class Worker:
    """One worker process; `call(**request)` sends a request and waits for the answer."""

    def __init__(self, process: str, log_dir: str, env: dict | None = None):
        self.name, self.started = process, time.perf_counter()
        self.log_path = os.path.join(log_dir, f"{process}-{id(self)}.log")
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen([sys.executable, "-m", "benchmarks.harness"], cwd=ROOT, text=True,
                                      env=process_env(process, env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log)

    def call(self, **request) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            with open(self.log_path) as f:
                raise WorkerError(f"worker {self.name} died (exit {self._proc.poll()}): {f.read()[-800:]}")
        answer = json.loads(line)
        if isinstance(answer, dict) and "error" in answer:
            raise WorkerError(f"{self.name}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write('{"op": "quit"}\n')
                self._proc.stdin.flush()
                self._proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()
        self._log.close()


class InlineWorker:
    """A worker that runs the requests in this process (BENCH_INLINE=1: smoke tests, no timing claims)."""

    def __init__(self, process: str, *_):
        self.name, self.started, self._runs = process, time.perf_counter(), {}

    def call(self, **request) -> dict:
        try:
            return _handle(request, self._runs)
        except Exception as e:  # noqa: BLE001 (as a worker process answers)
            raise WorkerError(f"{self.name}: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        pass


class Pool:
    """Worker processes by name, started on first use; `with Pool() as pool:` ends them."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="bench-workers-")
        self.workers: dict[str, Worker] = {}
        self._kind = InlineWorker if os.environ.get("BENCH_INLINE") else Worker

    def __getitem__(self, process: str) -> Worker:
        if process not in self.workers:
            self.workers[process] = self._kind(process, self._dir.name)
        return self.workers[process]

    def fresh(self, side: Side) -> Worker:
        """A new process for one repeat of `side` (the caller closes it)."""
        return self._kind(side.process, self._dir.name, side.env)

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: w.call(op="rss")["peak_rss_mb"] for name, w in self.workers.items()}

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers.values():
            worker.close()
        self._dir.cleanup()


@dataclasses.dataclass(frozen=True)
class Side:
    """A timed loop built by `factory(**args)` in worker `process` (with `env` on top, fresh runs only)."""

    process: str
    factory: str
    args: dict = dataclasses.field(default_factory=dict)
    first_n: int = 10  # units of the first calibration run
    n: int | None = None  # fixed units per repeat (no calibration)
    env: dict | None = None


def compare(pool: Pool, sides: dict[str, Side], *, repeats: int = 5, seconds: float = 1.0,
            fresh: bool = False) -> dict[str, dict]:
    """Time every side, alternating; {side: figures} with "rate" (median units/s), "min", "max",
    "rates", "n", "repeats", "value" (the last run's), the factory's info, "process_s" (fresh:
    each process's whole life), or {"error": why} for a side that failed (the others still run)."""
    out: dict[str, dict] = {name: {"rates": [], "process_s": []} for name in sides}
    units: dict[str, int] = {}
    if not fresh:
        for name, side in sides.items():
            try:
                out[name].update(_setup(pool[side.process], name, side, seconds, units))
            except WorkerError as e:
                out[name] = {"error": str(e)}
                print(f"  ({name}: {e})", file=sys.stderr)
    order = [n for n in sides if "error" not in out[n]]
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)] if order else []:
            if "error" in out[name]:
                continue
            worker = pool.fresh(sides[name]) if fresh else pool[sides[name].process]
            try:
                if fresh:
                    out[name].update(_setup(worker, name, sides[name], seconds, units))
                answer = worker.call(op="run", side=name, n=units[name])
            except WorkerError as e:
                out[name] = {"error": str(e)}
                continue
            finally:
                if fresh:
                    worker.close()
                    out[name].get("process_s", []).append(time.perf_counter() - worker.started)
            out[name]["rates"].append(answer["units"] / answer["seconds"])
            out[name].update(value=answer["value"], n=units[name])
    for name, fig in out.items():
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
        while True:
            answer = worker.call(op="run", side=name, n=n)
            if answer["seconds"] >= min(0.25, seconds / 2) or n >= 10**8:
                break
            n *= 4
        n = max(1, round(n * seconds / answer["seconds"]))
    if side.n is None:
        worker.call(op="run", side=name, n=n)  # a warm-up at the final size
    units[name] = n
    return info


# ----------------------------------------------------------------------------- formatting


def rate_cell(figures: dict | None, scale: float = 1.0) -> str:
    """'12,345 (11,000-13,000)' from a side's figures, or why it is missing."""
    if not figures:
        return "—"
    if "rate" not in figures:
        return "failed"
    return f"{figures['rate'] * scale:,.0f} ({figures['min'] * scale:,.0f}-{figures['max'] * scale:,.0f})"


def ratio(a: dict | None, b: dict | None) -> float | None:
    """Median rate of a over median rate of b, None where either is missing."""
    return a["rate"] / b["rate"] if a and b and "rate" in a and "rate" in b else None


def ratio_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def best(figures: dict[str, dict], names) -> tuple[str | None, dict | None]:
    """The fastest of the named sides that ran: (name, figures)."""
    ran = [(figures[n]["rate"], n) for n in names if "rate" in figures.get(n, {})]
    return (max(ran)[1], figures[max(ran)[1]]) if ran else (None, None)


def threads_label(threads: int) -> str:
    return f"{threads} thread{'s' * (threads > 1)}"


def table(figures: dict[str, dict], base: str, unit: str, rss: dict | None = None,
          processes: dict[str, str] | None = None) -> None:
    """One markdown row per side: median (min-max) `unit`, the base side's ratio to it, set-up s, first call s."""
    print(f"| side | {unit} median (min-max) | {base.split(',')[0]} is | set-up s | first call s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, fig in figures.items():
        if "rate" not in fig:
            print(f"| {name} | failed: {fig.get('error', '?')[:120]} | | | | |")
            continue
        mib = (rss or {}).get((processes or {}).get(name))
        print(f"| {name} | {rate_cell(fig)} | {ratio_cell(ratio(figures.get(base), fig))} | "
              f"{fig.get('setup_s', 0):.2f} | {fig.get('first_call_s', 0):.2f} | {f'{mib:,.0f}' if mib else '—'} |")


# ----------------------------------------------------------------------------- the worker process


def _load(path: str):
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def _handle(request: dict, runs: dict) -> dict:
    op = request["op"]
    if op == "setup":
        t = time.perf_counter()
        run, info = _load(request["factory"])(**request.get("args", {}))
        setup_s, t = time.perf_counter() - t, time.perf_counter()
        run(1)
        runs[request["side"]] = run
        return {"setup_s": setup_s, "first_call_s": time.perf_counter() - t, **info}
    if op == "run":
        t = time.perf_counter()
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
        request = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            answer = _handle(request, runs)
        except Exception as e:  # noqa: BLE001 (reported to the caller, which decides)
            answer = {"error": f"{type(e).__name__}: {e}", "traceback": "".join(traceback.format_exception(e)[-3:])}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    serve()
