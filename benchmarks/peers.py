"""rnninspect against the peers a user would pick instead, outputs checked equal.

Row by row: PyTorch (nn.RNN/LSTM/GRU + Linear), ONNX Runtime (an ONNX graph built with
onnx.helper from the same weights), Keras 3 on JAX (a jitted stateless call) and
Keras 3 on TensorFlow (``predict``, and ``predict`` compiled with ``jit_compile=True``).

    python benchmarks/peers.py --json out.json   # everything, memory run included
    python benchmarks/peers.py --quick           # 5 rounds, T sweep to 10,000, no memory run
    python benchmarks/peers.py --peers rnninspect,onnxruntime --kinds LSTM --shapes 1024x100x32x128

Every peer is optional: one that is not installed is skipped with a note. Each runs
in its own process (Keras backends cannot share one), all alive at once and asked in
turn, one timed sample each per round with the order rotated every round, so load
drifts hit them alike; a row reports each peer's median. The model of each row is a
Keras model with non-zero biases, saved as ``.keras`` and loaded by rnninspect; the
same weights are copied into PyTorch and the ONNX graph.

As every benchmark here, it runs as users' machines do: OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are unset for its own processes (set by this machine's environment
for older OpenBLAS builds; tests and CI keep them), and it reports the BLAS kernel.
It also measures the machine's float32 matmul peak (a large sgemm) and reports each
rnninspect row's share of it, counting the recurrent layer's matrix products.
Memory (2 GiB in, peak resident set) is ``bench.py``'s measurement, run here too.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # before NumPy loads its BLAS
    os.environ.pop(_var, None)

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import THREADS, K, best_of, have, make_weights, torch_runner

KINDS = ["SimpleRNN", "LSTM", "GRU"]
SHAPES = [  # (N, T, D, M)
    (1024, 100, 32, 128),
    (16384, 50, 16, 64),
    (64, 1000, 64, 256),
    (1, 1000, 16, 64),
    (8, 100, 8, 32),
]
SWEEP = (256, 16, 64)  # (N, D, M) of the LSTM T sweep (T = 100,000: 1.6 GB of input)
SWEEP_T = [100, 300, 1000, 3000, 10_000, 30_000, 100_000]
RTOL, ATOL = 1e-4, 1e-5  # every peer's output against rnninspect's
SAMPLE_S = 0.05  # one timed sample repeats a call until it lasts about this long

# name -> (module that must be importable, extra environment of its process)
PEERS: dict[str, tuple[str, dict[str, str]]] = {
    # The NumPy engine (the default and the reference), and the same with the `fast`
    # extra as a long-running process has it: kernels loaded, used where they pay.
    "rnninspect": ("rnninspect", {"RNNINSPECT_ENGINE": "numpy"}),
    "rnninspect-fast": ("numba", {"RNNINSPECT_ENGINE": "auto"}),
    "torch": ("torch", {}),
    "onnxruntime": ("onnxruntime", {}),
    "keras-jax": ("jax", {"KERAS_BACKEND": "jax"}),
    "keras-tf": ("tensorflow", {"KERAS_BACKEND": "tensorflow"}),
    "keras-tf-xla": ("tensorflow", {"KERAS_BACKEND": "tensorflow"}),
}
LABEL = {
    "rnninspect": "rnninspect",
    "rnninspect-fast": "rnninspect[fast]",
    "torch": "PyTorch",
    "onnxruntime": "ONNX Runtime",
    "keras-jax": "Keras/JAX jit",
    "keras-tf": "Keras/TF predict",
    "keras-tf-xla": "Keras/TF XLA",
}


def key(kind: str, shape: tuple[int, int, int, int]) -> str:
    return f"{kind} {shape[0]}x{shape[1]}x{shape[2]}x{shape[3]}"


def rnn_flops(kind: str, N: int, T: int, D: int, M: int) -> float:
    """Multiply-adds x 2 of the recurrent layer's matrix products (x W and h U per
    step, all gates); the Dense head and elementwise work are not counted."""
    g = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
    return 2.0 * N * T * g * (D * M + M * M)


# ----------------------------------------------------------------------------- models


def build_keras_models(out: Path, rows: list[tuple[str, tuple[int, int, int, int]]]) -> None:
    """(In a Keras process.) Each row's Keras model, weights from ``make_weights``
    (non-zero biases), saved as ``<key>.keras``."""
    import keras

    for kind, (_N, T, D, M) in rows:
        extra = {"reset_after": True} if kind == "GRU" else {}
        layer = getattr(keras.layers, kind)(M, name="rnn", **extra)
        model = keras.Sequential([keras.Input((T, D)), layer, keras.layers.Dense(K, name="head")])
        w = make_weights(kind, D, M)
        model.get_layer("rnn").set_weights(
            [w["rnn/kernel"], w["rnn/recurrent_kernel"], w["rnn/bias"]]
        )
        model.get_layer("head").set_weights([w["head/kernel"], w["head/bias"]])
        model.save(out / f"{key(kind, (_N, T, D, M))}.keras")


def onnx_model(kind: str, w: dict[str, np.ndarray], T: int, D: int, M: int) -> bytes:
    """The row's model as an ONNX graph (opset 17): Transpose to time-major, the
    ONNX RNN/LSTM/GRU op, the last hidden state, MatMul + Add."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    Kx, R, b = w["rnn/kernel"], w["rnn/recurrent_kernel"], w["rnn/bias"]
    if kind == "LSTM":  # Keras i, f, c, o -> ONNX i, o, f, c
        i, f, c, o = np.split(np.arange(4 * M), 4)
        order = np.concatenate([i, o, f, c])
        Kx, R, bias = Kx[:, order], R[:, order], np.concatenate([b[order], 0 * b])
        op, attrs = "LSTM", {}
    elif kind == "GRU":  # Keras z, r, h as ONNX; reset_after is linear_before_reset
        bias = np.concatenate([b[0], b[1]])
        op, attrs = "GRU", {"linear_before_reset": 1}
    else:
        bias = np.concatenate([b, 0 * b])
        op, attrs = "RNN", {}
    inits = [
        numpy_helper.from_array(Kx.T[None].astype(np.float32), "W"),
        numpy_helper.from_array(R.T[None].astype(np.float32), "R"),
        numpy_helper.from_array(bias[None].astype(np.float32), "B"),
        numpy_helper.from_array(w["head/kernel"], "HK"),
        numpy_helper.from_array(w["head/bias"], "HB"),
        numpy_helper.from_array(np.array([-1, M], dtype=np.int64), "SHAPE"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node(op, ["xt", "W", "R", "B"], ["", "yh"], hidden_size=M, **attrs),
        helper.make_node("Reshape", ["yh", "SHAPE"], ["h"]),
        helper.make_node("MatMul", ["h", "HK"], ["hk"]),
        helper.make_node("Add", ["hk", "HB"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "peer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, T, D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, K])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


# ----------------------------------------------------------------------------- workers


def _runner(peer: str, kind: str, shape: tuple[int, int, int, int], models: Path) -> Any:
    """(In the peer's process.) A function of x for this row, and nothing else."""
    _, T, D, M = shape
    path = models / f"{key(kind, shape)}.keras"
    if peer.startswith("rnninspect"):
        import rnninspect

        if peer == "rnninspect-fast":
            from rnninspect.ops import compiled

            compiled.load()  # numba's start-up paid, as in a process that has run a while
        model = rnninspect.load_model(path if path.exists() else models / f"{key(kind, shape)}.npz")
        return model.forward
    if peer == "torch":
        return torch_runner(kind, make_weights(kind, D, M), D, M)
    if peer == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            onnx_model(kind, make_weights(kind, D, M), T, D, M),
            opts,
            providers=["CPUExecutionProvider"],
        )
        return lambda x: sess.run(None, {"x": x})[0]
    import keras

    model = keras.saving.load_model(path)
    if peer == "keras-jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def call(tv: Any, ntv: Any, x: Any) -> Any:
            return model.stateless_call(tv, ntv, x)[0]

        return lambda x: np.asarray(call(tv, ntv, x))
    if peer == "keras-tf-xla":
        model.compile(jit_compile=True)
    else:
        model.compile(jit_compile=False)
    return lambda x: model.predict(x, batch_size=len(x), verbose=0)


def _version(peer: str) -> str:
    if peer == "rnninspect-fast":
        import numba

        return f"rnninspect {__import__('rnninspect').__version__}, numba {numba.__version__}"
    mod = {"keras-jax": "jax", "keras-tf": "tensorflow", "keras-tf-xla": "tensorflow"}
    name = mod.get(peer, peer)
    found = __import__(name).__version__
    if peer.startswith("keras"):
        import keras

        return f"keras {keras.__version__}, {name} {found}"
    return f"{name} {found}"


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return ", ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
        f"({i.get('num_threads')} threads)"
        for i in threadpool_info()
    )


def _sample(fn: Any, x: np.ndarray, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - t0) / calls


def worker(peer: str, models: Path, data: Path) -> None:
    """Answer JSON requests, one a line, until stdin closes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if peer.startswith("keras-tf"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    fn: Any = None
    x: np.ndarray | None = None
    calls = 1
    for line in sys.stdin:
        req = json.loads(line)
        reply: dict[str, Any] = {}
        try:
            if req["op"] == "info":
                reply = {"version": _version(peer)}
                if peer == "rnninspect":
                    import rnninspect.blas  # noqa: F401  (NumPy and its BLAS loaded)

                    reply["blas"] = _blas()
            elif req["op"] == "peak":
                a = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
                t = best_of(lambda: a @ a, repeat=req["repeat"])
                reply = {"gflops": 2 * 4096**3 / t / 1e9}
            elif req["op"] == "prepare":
                kind, shape = req["kind"], tuple(req["shape"])
                fn = None
                x = np.load(data / f"{key(kind, shape)}.npy")
                fn = _runner(peer, kind, shape, models)
                y = np.asarray(fn(x))  # warm-up (and compilation), and the output
                np.save(data / f"{key(kind, shape)}.{peer}.npy", y)
                one = _sample(fn, x, 1)
                calls = max(1, min(200, int(SAMPLE_S / max(one, 1e-6))))
            elif req["op"] == "time":
                assert fn is not None and x is not None
                reply = {"s": _sample(fn, x, calls)}
            elif req["op"] == "products":
                assert fn is not None
                t = best_of(lambda: _products_only(fn.__self__, tuple(req["shape"])), req["repeat"])
                reply = {"s": t}
            elif req["op"] == "sweep":
                wall, cpu = _sweep_point(models, data, req["T"], req["repeat"])
                reply = {"s": wall, "cpu_s": cpu}
        except Exception as exc:  # reported to the orchestrator as this peer's note
            reply = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(reply), flush=True)


def _products_only(model: Any, shape: tuple[int, int, int, int]) -> None:
    """(In rnninspect's process.) The recurrent layer's matrix products alone, as the
    NumPy engine runs them on this row: its chunks and their split across threads
    (``engine.plan``, ``engine.part_bounds``), BLAS single-threaded in each thread,
    one stacked product a step over ``[x_t; 1; h]`` (the row's multiply-adds, and the
    bias row). Every elementwise pass, copy and line of Python is left out, so its
    rate bounds what the whole layer can reach: the ceiling of '% peak'."""
    import contextlib

    from rnninspect import blas, engine
    from rnninspect.model import Recurrent

    N, T, D, M = shape
    layer = next(n.layer for n in model.nodes if isinstance(n.layer, Recurrent))
    rows = layer.GATES * M
    ft = np.dtype(np.float32)
    step, workers = engine.plan(model, N, T, D, ft)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((rows, D + 1 + M), dtype=np.float32)

    def part(n: int) -> None:
        S = rng.standard_normal((D + 1 + M, n), dtype=np.float32)
        z = np.empty((rows, n), dtype=np.float32)
        for _ in range(T):
            np.matmul(W, S, out=z)

    # The engine's own pool: its threads pinned one to a core, as the engine runs
    # (a fresh pool's threads were measured sharing one core on some runs).
    pool = engine._shared_pool(workers) if workers > 1 else None
    with blas.single_threaded() if workers > 1 else contextlib.nullcontext():
        for start in range(0, N, step):
            n = min(N, start + step) - start
            if pool is None:
                part(n)
                continue
            bounds = engine.part_bounds(model, n, workers, ft.itemsize)
            list(pool.map(part, np.diff(bounds).tolist()))


def _sweep_point(models: Path, data: Path, T: int, repeat: int) -> tuple[float, float]:
    """(In rnninspect's process.) Seconds for one forward of the sweep's LSTM at T:
    wall time and CPU time of all threads (best of ``repeat``). CPU time shows
    the cost per step on a loaded machine too, where wall time mostly shows the load."""
    from bench import write_npz

    import rnninspect

    N, D, M = SWEEP
    path = models / f"sweep-{D}-{M}.npz"
    if not path.exists():
        write_npz(path, "LSTM", None, D, M)
    model = rnninspect.load_model(path)
    x = np.random.default_rng(T).standard_normal((N, T, D), dtype=np.float32)
    if T <= 10_000:  # longer runs take seconds: no warm-up needed
        model.forward(x)
    # Best of ``repeat`` at every T, the longest too: this machine's speed swings by
    # a third for seconds at a time (one run of 10,000 steps measured 110 and 160
    # us/step), and a single sample of the longest run once read 1.46x its best.
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        model.forward(x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


class Peer:
    def __init__(self, name: str, models: Path, data: Path) -> None:
        env = dict(os.environ, **PEERS[name][1])
        cmd = [sys.executable, __file__, "--worker", name, str(models), str(data)]
        self.name = name
        self.log = data / f"{name}.log"  # the peer's own chatter (TF, XLA), shown on failure
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )

    def ask(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            return {"error": f"worker exited ({self.proc.wait()}): {' / '.join(tail)}"}
        found: dict[str, Any] = json.loads(line)
        return found

    def close(self) -> None:
        """Let the worker go (it exits at the end of its input); again: nothing."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait()


# ----------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def run_rows(
    peers: dict[str, Peer],
    rows: list[tuple[str, tuple[int, int, int, int]]],
    data: Path,
    rounds: int,
    peaks: list[float],
) -> list[dict[str, Any]]:
    """Each row's medians; ``peaks`` gets a matmul-peak measurement before each row
    (the machine's peak is their maximum: a shared machine lowers some of them)."""
    out = []
    for kind, shape in rows:
        k = key(kind, shape)
        if "rnninspect" in peers:
            peaks.append(peers["rnninspect"].ask(op="peak", repeat=2)["gflops"])
        np.save(
            data / f"{k}.npy",
            np.random.default_rng(1).standard_normal(
                (shape[0], shape[1], shape[2]), dtype=np.float32
            ),
        )
        row: dict[str, Any] = {"kind": kind, "shape": list(shape), "peers": {}}
        alive = []
        for name, peer in peers.items():
            got = peer.ask(op="prepare", kind=kind, shape=list(shape))
            if "error" in got:
                row["peers"][name] = {"error": got["error"]}
            else:
                alive.append(name)
        ours = np.load(data / f"{k}.rnninspect.npy") if "rnninspect" in alive else None
        samples: dict[str, list[float]] = {n: [] for n in alive}
        for r in range(rounds):  # interleaved: every peer once a round, order rotated
            order = alive[r % len(alive) :] + alive[: r % len(alive)]
            for name in order:
                got = peers[name].ask(op="time")
                if "error" not in got:
                    samples[name].append(got["s"])
        if "rnninspect" in alive and shape[0] >= 64:  # the mid and large rows
            got = peers["rnninspect"].ask(op="products", shape=list(shape), repeat=3)
            if "s" in got:
                row["products_gflops"] = rnn_flops(kind, *shape) / got["s"] / 1e9
        for name in alive:
            entry: dict[str, Any] = {"median_s": statistics.median(samples[name])}
            if ours is not None and name != "rnninspect":
                y = np.load(data / f"{k}.{name}.npy")
                entry["equal"] = bool(np.allclose(y, ours, rtol=RTOL, atol=ATOL))
                entry["max_abs_diff"] = float(np.max(np.abs(y - ours)))
            row["peers"][name] = entry
            (data / f"{k}.{name}.npy").unlink(missing_ok=True)
        if "rnninspect" in alive:
            t = min(
                v["median_s"]
                for n, v in row["peers"].items()
                if n.startswith("rnninspect") and "median_s" in v
            )
            row["ours_s"] = t  # the better of the two engines
            row["gflops"] = rnn_flops(kind, *shape) / t / 1e9
            others = [
                v["median_s"]
                for n, v in row["peers"].items()
                if not n.startswith("rnninspect") and "median_s" in v
            ]
            row["fastest_other_over_ours"] = min(others) / t if others else None
        (data / f"{k}.npy").unlink()
        out.append(row)
        ours_s = row["peers"].get("rnninspect", {}).get("median_s")
        done = "" if ours_s is None else f": rnninspect {ours_s * 1e3:.2f} ms"
        print(f"  done {k}{done}", flush=True)
    return out


def print_header(names: list[str]) -> None:
    cols = "".join(f"{LABEL[n]:>18}" for n in names)
    print(
        f"{'row (N x T x D x M)':26}{cols}{'best peer/ours':>16}{'% peak':>8}{'products':>10}",
        flush=True,
    )


def print_row(row: dict[str, Any], names: list[str]) -> None:
    text = f"{key(row['kind'], tuple(row['shape'])):26}"
    for n in names:
        e = row["peers"].get(n, {})
        if "median_s" not in e:
            cell = "error" if "error" in e else "-"
        else:
            cell = f"{e['median_s'] * 1e3:.2f} ms"
            if e.get("equal") is False:
                cell += " !="
        text += f"{cell:>18}"
    ratio = row.get("fastest_other_over_ours")
    ratio_text = "" if ratio is None else f"{ratio:.2f}x"
    frac = row.get("peak_frac")
    frac_text = "" if frac is None else f"{100 * frac:.0f}%"
    alone = row.get("products_peak_frac")
    alone_text = "" if alone is None else f"{100 * alone:.0f}%"
    print(f"{text}{ratio_text:>16}{frac_text:>8}{alone_text:>10}", flush=True)
    for n in names:
        if "error" in row["peers"].get(n, {}):
            print(f"    {n}: {row['peers'][n]['error']}", flush=True)


def sweep(ours: Peer, Ts: list[int], repeat: int) -> list[dict[str, Any]]:
    N, D, M = SWEEP
    print(
        f"\nT sweep: LSTM, N={N}, D={D}, M={M}; per-step cost against the best row "
        "(target <= 1.3x; CPU time of all threads beside wall time)"
    )
    found = []
    for T in Ts:
        got = ours.ask(op="sweep", T=T, repeat=repeat)
        if "error" in got:
            print(f"  T={T}: {got['error']}")
            continue
        found.append(
            {
                "T": T,
                "s": got["s"],
                "per_step_us": got["s"] / T * 1e6,
                "cpu_per_step_us": got["cpu_s"] / T * 1e6,
            }
        )
    best = min((r["per_step_us"] for r in found), default=1.0)
    best_cpu = min((r["cpu_per_step_us"] for r in found), default=1.0)
    for r in found:
        r["relative"] = r["per_step_us"] / best
        r["cpu_relative"] = r["cpu_per_step_us"] / best_cpu
        print(
            f"  T={r['T']:>7}: {r['s'] * 1e3:9.1f} ms, {r['per_step_us']:7.1f} us/step "
            f"({r['relative']:.2f}x); CPU {r['cpu_per_step_us']:7.1f} us/step ({r['cpu_relative']:.2f}x)"
        )
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, T sweep to 10,000")
    ap.add_argument("--json", metavar="PATH", help="also write every number here")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument(
        "--shapes",
        default=",".join("x".join(map(str, s)) for s in SHAPES),
        help="comma-separated NxTxDxM (default: the five rows)",
    )
    ap.add_argument("--rounds", type=int, help="timed samples per peer and row (median)")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-max", type=int, help="longest T of the sweep")
    ap.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        help="bench.py's 2 GiB memory run (default: on, off with --quick)",
    )
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return
    rounds = args.rounds or (5 if args.quick else 11)
    t_start = time.perf_counter()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]
    rows = [(kind, shape) for kind in args.kinds.split(",") if kind for shape in shapes]
    report: dict[str, Any] = {"machine": machine(), "threads": THREADS, "notes": []}
    print(
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; "
        f"threads per peer: {THREADS}; load average {report['machine']['load_average']}"
    )
    wanted = [p for p in args.peers.split(",") if p]
    with tempfile.TemporaryDirectory() as tmp:
        models, data = Path(tmp) / "models", Path(tmp) / "data"
        models.mkdir()
        data.mkdir()
        keras_env = next(
            (PEERS[p][1] for p in ("keras-jax", "keras-tf") if have(PEERS[p][0])), None
        )
        if have("keras") and keras_env is not None:
            built = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _BUILD,
                    str(Path(__file__).parent),
                    str(models),
                    json.dumps(rows),
                ],
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **keras_env),
                capture_output=True,
                text=True,
            )
            if built.returncode:  # Keras's own chatter only when it failed
                sys.exit(f"building the Keras models failed:\n{built.stderr[-2000:]}")
            report["models"] = "Keras models (non-zero biases) saved as .keras, loaded by each peer"
        else:
            from bench import write_npz

            for kind, (N, T, D, M) in rows:
                write_npz(models / f"{key(kind, (N, T, D, M))}.npz", kind, T, D, M)
            report["notes"].append("keras not installed: models written as .npz (same weights)")
        peers: dict[str, Peer] = {}
        for name in wanted:
            if not have(PEERS[name][0]) or (name.startswith("keras") and not have("keras")):
                report["notes"].append(f"{name}: not installed, skipped")
                continue
            peers[name] = Peer(name, models, data)
        versions = {}
        for name, peer in list(peers.items()):
            got = peer.ask(op="info")
            if "error" in got:
                report["notes"].append(f"{name}: {got['error']}")
                peer.close()
                del peers[name]
                continue
            versions[name] = got["version"]
            if "blas" in got:
                report["blas"] = got["blas"]
        report["versions"] = versions
        for note in report["notes"]:
            print(f"note: {note}")
        print("versions: " + "; ".join(f"{LABEL[n]}: {v}" for n, v in versions.items()))
        print(f"rnninspect's BLAS (threadpoolctl): {report.get('blas', 'unknown')}")
        try:
            longest = args.sweep_max or (10_000 if args.quick else 100_000)
            measure(peers, rows, data, rounds, report, longest, not args.no_sweep)
        finally:
            for peer in peers.values():
                peer.close()
    if args.memory or (args.memory is None and not args.quick):
        from bench import bench_memory

        print("\nmemory (bench.py): ", flush=True)
        bench_memory(["LSTM"])
    report["seconds"] = time.perf_counter() - t_start
    print(f"\ntook {report['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def measure(
    peers: dict[str, Peer],
    rows: list[tuple[str, tuple[int, int, int, int]]],
    data: Path,
    rounds: int,
    report: dict[str, Any],
    longest: int,
    with_sweep: bool,
) -> None:
    """The rows, their table, then the T sweep (into ``report``)."""
    peaks: list[float] = []
    report["rows"] = run_rows(peers, rows, data, rounds, peaks)
    peak = max(peaks, default=0.0)
    report["matmul_peak_gflops"] = peak
    report["matmul_peak_samples"] = peaks
    for row in report["rows"]:
        if "gflops" in row and peak:
            row["peak_frac"] = row["gflops"] / peak
        if "products_gflops" in row and peak:
            row["products_peak_frac"] = row["products_gflops"] / peak
    print(
        f"\nfloat32 matmul peak (4096^3 sgemm through NumPy, {THREADS} threads, the best "
        f"of {len(peaks)} measurements, one before each row): {peak:.0f} GFLOP/s"
    )
    print(
        f"outputs equal to rnninspect's within rtol={RTOL}, atol={ATOL} ('!=' marks a miss); "
        f"medians of {rounds} interleaved samples; 'best peer/ours' is the fastest peer's "
        "time over rnninspect's better engine (above 1: rnninspect is the fastest); '% peak' is "
        "rnninspect's GFLOP/s in the recurrent layer's products over the peak; 'products' is "
        "the same for those products alone, run as the engine runs them (its chunks, threads "
        "and shapes; mid and large rows): the ceiling of '% peak'\n"
    )
    print_header(list(peers))
    for row in report["rows"]:
        print_row(row, list(peers))
    if "rnninspect" in peers and with_sweep:
        for name, peer in peers.items():
            if name != "rnninspect":
                peer.close()  # the sweep has the machine to itself
        Ts = [steps for steps in SWEEP_T if steps <= longest]
        report["sweep"] = sweep(peers["rnninspect"], Ts, 2 if rounds < 11 else 3)


_BUILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from peers import build_keras_models
build_keras_models(Path(sys.argv[2]), [(k, tuple(s)) for k, s in json.loads(sys.argv[3])])
"""

if __name__ == "__main__":
    main()
