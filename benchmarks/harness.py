"""Fair side-by-side timing: worker processes, alternating repeats, medians and ranges.

A comparison names its sides (timed loops), each built by a factory inside a worker process
(benchmarks/worker.py). Sides of one framework share a process; frameworks never do
(PyTorch in a process where JAX has run is measurably slower, and the reverse may hold).
Each side is warmed up and calibrated so one repeat lasts about `seconds`; then the repeats
go round the sides in turn, one side running at a time, with the starting side rotated each
round, so slow drifts in the machine's load hit every side alike. Figures are the median
over the repeats with the min-max range; compile and set-up time are reported apart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_XLA_THREAD = "--xla_cpu_multi_thread_eigen=false"  # what the makemore-jax command runs with (cli.py)


def process_env(process: str) -> dict[str, str]:
    """The environment of a worker process, from its name.

    "jax...": XLA as the makemore-jax command runs it (one Eigen thread), unless the name
    contains "xla-threads" (XLA's defaults); "torch...-<k>t": k intra-op threads.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    env.pop("XLA_FLAGS", None)
    if process.startswith("jax") and "xla-threads" not in process:
        env["XLA_FLAGS"] = ONE_XLA_THREAD
    if process.startswith("torch"):
        threads = process.rsplit("-", 1)[-1].rstrip("t")
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TORCHINDUCTOR_COMPILE_THREADS="1")
    return env


class WorkerError(RuntimeError):
    pass


class Worker:
    """One `python -m benchmarks.worker` process; `call` sends a request and waits for the answer."""

    def __init__(self, process: str, log_dir: str):
        self.name = process
        self.log_path = os.path.join(log_dir, f"{process}.log")
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker"], cwd=ROOT, env=process_env(process),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def call(self, **request) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            with open(self.log_path) as f:
                tail = f.read()[-800:]
            raise WorkerError(f"worker {self.name} died (exit {self._proc.poll()}): {tail}")
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


class Pool:
    """Worker processes by name, started on first use; `with Pool() as pool: ...` ends them."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="bench-workers-")
        self.workers: dict[str, Worker] = {}

    def __getitem__(self, process: str) -> Worker:
        if process not in self.workers:
            self.workers[process] = Worker(process, self._dir.name)
        return self.workers[process]

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory (MiB) of every live worker so far."""
        return {name: w.call(op="rss")["peak_rss_mb"] for name, w in self.workers.items()}

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers.values():
            worker.close()
        self._dir.cleanup()


@dataclasses.dataclass(frozen=True)
class Side:
    """A timed loop: built by `factory(**args)` in worker `process`; run(n) does n `unit`s."""

    process: str
    factory: str
    args: dict = dataclasses.field(default_factory=dict)
    first_n: int = 10  # units of the first calibration run


def compare(pool: Pool, sides: dict[str, Side], *, repeats: int = 5, seconds: float = 1.0) -> dict[str, dict]:
    """Time every side, alternating, and return {side: figures}.

    Each side's figures: "rate" (median units/s), "min", "max", "rates" (every repeat),
    "n" (units per repeat), the factory's set-up info ("setup_s", "first_call_s", ...), or
    {"error": why} when the side could not be built or run (the others still are).
    """
    out: dict[str, dict] = {}
    live: dict[str, int] = {}  # side -> units per repeat
    for name, side in sides.items():
        try:
            out[name] = pool[side.process].call(op="setup", side=name, factory=side.factory, args=side.args)
            live[name] = _calibrate(pool[side.process], name, side.first_n, seconds)
        except WorkerError as e:
            out[name] = {"error": str(e)}
            print(f"  ({name}: {e})", file=sys.stderr)
    rates: dict[str, list[float]] = {name: [] for name in live}
    order = list(live)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)] if order else []:
            answer = pool[sides[name].process].call(op="run", side=name, n=live[name])
            rates[name].append(answer["units"] / answer["seconds"])
            out[name]["value"] = answer["value"]
    for name, values in rates.items():
        out[name].update(rate=statistics.median(values), min=min(values), max=max(values), rates=values,
                         n=live[name], repeats=repeats)
    return out


def _calibrate(worker: Worker, side: str, n: int, seconds: float) -> int:
    """Warm up and return the units that take about `seconds` (at least one)."""
    while True:
        answer = worker.call(op="run", side=side, n=n)
        if answer["seconds"] >= min(0.25, seconds / 2) or n >= 10**8:
            break
        n *= 4
    n = max(1, round(n * seconds / answer["seconds"]))
    worker.call(op="run", side=side, n=n)  # a second warm-up at the final size
    return n


# ----------------------------------------------------------------------------- formatting


def rate_cell(figures: dict | None, scale: float = 1.0) -> str:
    """'12,345 (11,000-13,000)' from a side's figures, or why it is missing."""
    if figures is None:
        return "—"
    if "error" in figures:
        return "failed"
    return f"{figures['rate'] * scale:,.0f} ({figures['min'] * scale:,.0f}-{figures['max'] * scale:,.0f})"


def ratio(a: dict | None, b: dict | None) -> float | None:
    """Median rate of a over median rate of b, None where either is missing."""
    if not a or not b or "rate" not in a or "rate" not in b:
        return None
    return a["rate"] / b["rate"]


def ratio_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def best(figures: dict[str, dict], names: list[str]) -> tuple[str | None, dict | None]:
    """The fastest of the named sides that ran: (name, figures)."""
    ran = [(figures[n]["rate"], n) for n in names if n in figures and "rate" in figures[n]]
    if not ran:
        return None, None
    name = max(ran)[1]
    return name, figures[name]


def torch_available() -> bool:
    """Whether the PyTorch columns can run: torch importable and not switched off (--no-torch)."""
    if os.environ.get("BENCH_NO_TORCH"):
        return False
    import importlib.util
    return importlib.util.find_spec("torch") is not None
