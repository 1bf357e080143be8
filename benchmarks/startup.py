"""Whole-process time of ``rnninspect forward`` on the seed model against the floor,
``python -c "import numpy"`` (issue 15's target: within 1.3x), and what importing
Typer, which every command needs, adds to that floor on its own.

    python benchmarks/startup.py [--runs 40] [--json out.json]

Like hyperfine: one warm-up run of each command, then ``--runs`` rounds that run
every command once in turn (so a busy spell of a shared machine hits all alike);
the medians, their ratios to the floor, and the quartiles. Also the CPU time
(user + system, the process and its parse child together), which a busy machine
inflates less than wall time (but two processes overlapping count twice). The package's bytecode is
compiled first, as an install leaves it. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
unset for the timed processes (as on users' machines; this process keeps them).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "sample_models" / "seed" / "model.keras"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=40, help="rounds (default 40)")
    ap.add_argument("--json", help="write the medians here")
    args = ap.parse_args()
    compileall.compile_dir(str(ROOT / "rnninspect"), quiet=1)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        x = Path(tmp) / "x.npy"
        np.save(x, np.random.default_rng(0).standard_normal((256, 10, 3)).astype(np.float32))
        commands = {
            "import numpy": [py, "-c", "import numpy"],
            # What Typer's import alone adds to the floor (the CLI cannot start without it).
            "import numpy, typer": [py, "-c", "import numpy, typer"],
            "forward x.npy -o y.npy": [py, "-m", "rnninspect", "forward", str(SEED), str(x), "-o", f"{tmp}/y.npy"],
            "forward x.npy (printed)": [py, "-m", "rnninspect", "forward", str(SEED), str(x)],
            "forward --random 3": [py, "-m", "rnninspect", "forward", str(SEED), "--random", "3", "--seed", "0"],
            "summary": [py, "-m", "rnninspect", "summary", str(SEED)],
            "--help": [py, "-m", "rnninspect", "--help"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        for cmd in commands.values():
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                times[name].append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    floor = statistics.median(times["import numpy"])
    cpu_floor = statistics.median(cpu["import numpy"])
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}; {args.runs} alternating rounds, medians")
    result = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        q1, _, q3 = statistics.quantiles(ts, n=4)
        c = statistics.median(cpu[name])
        result[name] = {"median_ms": med * 1e3, "ratio": med / floor, "cpu_ms": c * 1e3}
        print(
            f"{name:26s} {med * 1e3:7.1f} ms  ({q1 * 1e3:6.1f}-{q3 * 1e3:6.1f})  "
            f"{med / floor:5.2f}x import numpy;  CPU {c * 1e3:6.1f} ms, {c / cpu_floor:5.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
