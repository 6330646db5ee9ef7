"""A benchmark worker: one process that builds timed loops ("sides") and runs one timed repeat
per request, so that each framework is measured in a process of its own.

    python -m benchmarks.worker      (started by benchmarks.harness, never by hand)

It reads one JSON request per line on stdin and answers one JSON line on its own stdout
(the process's file descriptor 1 goes to stderr, so nothing a library prints can corrupt
the answers):

    {"op": "setup", "side": name, "factory": "module:function", "args": {...}}
        factory(**args) -> (run, info): run(n) -> (units done, a float such as the loss);
        answers {"setup_s", "first_call_s" (run(1): includes compile for lazy compilers),
        **info}
    {"op": "run", "side": name, "n": n}  -> {"seconds", "units", "value"}
    {"op": "call", "factory": ..., "args": ...} -> whatever factory(**args) returns (JSON)
    {"op": "rss"}   -> {"peak_rss_mb": the peak resident memory of this process}
    {"op": "quit"}
A failure answers {"error": the traceback's last lines} and the worker carries on.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback


def _load(path: str):
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def _handle(request: dict, sides: dict) -> dict:
    op = request["op"]
    if op == "setup":
        t = time.perf_counter()
        run, info = _load(request["factory"])(**request.get("args", {}))
        setup_s = time.perf_counter() - t
        t = time.perf_counter()
        run(1)
        sides[request["side"]] = run
        return {"setup_s": setup_s, "first_call_s": time.perf_counter() - t, **info}
    if op == "run":
        run = sides[request["side"]]
        t = time.perf_counter()
        units, value = run(int(request["n"]))
        return {"seconds": time.perf_counter() - t, "units": units, "value": float(value)}
    if op == "call":
        return _load(request["factory"])(**request.get("args", {}))
    if op == "rss":  # ru_maxrss is in KiB on Linux
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from here on (python or C) goes to stderr
    sys.stdout = sys.stderr
    sides: dict = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            answer = _handle(request, sides)
        except Exception as e:  # noqa: BLE001 (reported to the harness, which decides)
            tail = "".join(traceback.format_exception(e)[-3:]).strip()
            answer = {"error": f"{type(e).__name__}: {e}", "traceback": tail}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
