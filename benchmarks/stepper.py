"""The stepper's cost per step against the batch engine's, for streams.

    python benchmarks/stepper.py [--quick] [--json out.json]

For SimpleRNN, LSTM and GRU + Dense(4) models (D=16; M=32 and 128) and batches of
N = 1, 32 and 512 streams, over T=200 steps it times

* ``stepper``: ``s.step(x_t)`` once per step (buffers made once; the model output
  for the sequence so far each step);
* ``chunked``: what streaming costs without a stepper, ``forward(x_t[:, None],
  initial_state=s, return_state=True)`` once per step, the state carried;
* ``batch``: ``forward`` over the whole (N, T, D) sequence at once, divided by T (the
  floor: every step's arithmetic with no per-step Python beyond the engine's loop);
* ``compiled``: the stepper on the compiled engine (``rnninspect[fast]``, numba);
* ``ort``: ONNX Runtime running one step per session call (the layer + Dense graph
  of ``small_rows.py``, the states passed in and out), when installed.

It prints microseconds per step (best of 3) and the ratios. OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are unset for this process only (before NumPy loads), so OpenBLAS
picks the kernel for this CPU itself; the kernel and thread count that ran are
reported through threadpoolctl when it is installed. Asserts nothing.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)  # this process only, before NumPy loads OpenBLAS

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import make_weights, write_npz

import rnninspect

D, T = 16, 200


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not found:
        return "no BLAS found"
    i = found[0]
    return (
        f"{i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}, "
        f"{i.get('num_threads')} thread(s)"
    )


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(kind: str, M: int, N: int, steps: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.npz"
        write_npz(path, kind, None, D, M)
        m = rnninspect.load_model(path)
    x = np.random.default_rng(0).standard_normal((N, steps, D)).astype(np.float32)
    s = m.stepper(batch=N)

    def stepper() -> None:
        s.reset()
        for t in range(steps):
            s.step(x[:, t])

    def chunked() -> None:
        state = None
        for t in range(steps):
            _, state = m.forward(x[:, t : t + 1], initial_state=state, return_state=True)

    def batch() -> None:
        m.forward(x)

    from rnninspect.ops import compiled

    fns = {"stepper": stepper, "chunked": chunked, "batch": batch}
    if compiled.available():
        with compiled.use("compiled"):
            sc = m.stepper(batch=N)

        def stepper_compiled() -> None:
            sc.reset()
            for t in range(steps):
                sc.step(x[:, t])

        fns["compiled"] = stepper_compiled
    if importlib.util.find_spec("onnxruntime") is not None:
        from small_rows import ort_runner

        run, _ = ort_runner(kind, make_weights(kind, D, M), M, stateful=True)
        zeros = [np.zeros((1, N, M), np.float32)] * (2 if kind == "LSTM" else 1)

        def ort_steps() -> None:
            s = zeros
            for t in range(steps):
                _, *s = run(x[:, t : t + 1], *s)

        fns["ort"] = ort_steps
    row: dict[str, object] = {"kind": kind, "M": M, "N": N, "T": steps}
    for name, fn in fns.items():
        row[f"{name}_us"] = best(fn) / steps * 1e6
    # The same numbers, whichever way (to float rounding: the engine may split N).
    s.reset()
    last = None
    for t in range(steps):
        last = s.step(x[:, t])
    np.testing.assert_allclose(last, m.forward(x), rtol=1e-5, atol=1e-6)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer sizes and steps")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    steps = 50 if args.quick else T
    sizes = (
        [(32, 1), (128, 32)] if args.quick else [(32, 1), (32, 32), (128, 1), (128, 32), (128, 512)]
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"BLAS: {blas()}")
    print(f"D={D}, T={steps}; microseconds per step (best of 3)")
    print(
        f"{'model':<10}{'M':>5}{'N':>5}{'stepper':>10}{'chunked':>10}{'batch':>10}{'step/batch':>12}{'chunk/step':>12}"
        f"{'compiled':>10}{'ort':>10}{'ort/ours':>10}"
    )
    rows = []
    for kind in ("SimpleRNN", "LSTM", "GRU"):
        for M, N in sizes:
            r = measure(kind, M, N, steps)
            rows.append(r)
            st, ch, ba = (float(r[k]) for k in ("stepper_us", "chunked_us", "batch_us"))  # type: ignore[arg-type]
            co = float(r.get("compiled_us", float("nan")))  # type: ignore[arg-type]
            ort = float(r.get("ort_us", float("nan")))  # type: ignore[arg-type]
            fastest = min(st, co) if co == co else st
            print(
                f"{kind:<10}{M:>5}{N:>5}{st:>10.1f}{ch:>10.1f}{ba:>10.1f}{st / ba:>12.2f}{ch / st:>12.1f}"
                f"{co:>10.1f}{ort:>10.1f}{ort / fastest:>10.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"blas": blas(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
