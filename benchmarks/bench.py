"""Benchmarks for rnninspect: engine throughput against PyTorch and Keras, whole-process
time against a Keras script, and peak memory on inputs/outputs larger than memory
budgets. Prints measured ratios; asserts nothing (targets are in the README).

    python benchmarks/bench.py                 # everything that can run here
    python benchmarks/bench.py --only engine   # engine | process | memory

PyTorch (torch.nn.RNN/LSTM/GRU + Linear, same weights, same thread count) and Keras 3
(TensorFlow backend predict; NumPy backend for the whole-process comparison) are used
only when installed; the script says which peers it ran against. rnninspect itself
must be importable (pip install -e .).
"""

from __future__ import annotations

import os

# As users' machines run: this machine's environment pins OpenBLAS to an old kernel
# (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE); unset for this process and the commands it
# runs, before NumPy loads its BLAS (tests and CI keep them).
for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(1024, 100, 32, 128), (16384, 50, 16, 64), (64, 1000, 64, 256)]  # (N, T, D, M)
K = 4
THREADS = os.cpu_count() or 1


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sgemm_peak() -> float:
    """This machine's float32 matrix-multiply rate through NumPy's BLAS, GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    t = best_of(lambda: a @ a, repeat=5)
    return 2 * 2048**3 / t / 1e9


def flops(kind: str, N: int, T: int, D: int, M: int) -> float:
    g = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
    return 2.0 * N * T * g * (D * M + M * M) + 2.0 * N * M * K


def make_weights(kind: str, D: int, M: int, seed: int = 0) -> dict[str, np.ndarray]:
    g = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
    rng = np.random.default_rng(seed)
    w = {
        "rnn/kernel": rng.standard_normal((D, g * M)) / np.sqrt(D),
        "rnn/recurrent_kernel": rng.standard_normal((M, g * M)) / np.sqrt(M),
        "rnn/bias": rng.standard_normal((2, g * M) if kind == "GRU" else (g * M,)) * 0.1,
        "head/kernel": rng.standard_normal((M, K)) / np.sqrt(M),
        "head/bias": rng.standard_normal(K) * 0.1,
    }
    return {k: v.astype(np.float32) for k, v in w.items()}


def keras_config(kind: str, T: int | None, D: int, M: int) -> str:
    rnn: dict[str, object] = {"name": "rnn", "units": M, "activation": "tanh", "use_bias": True}
    if kind != "SimpleRNN":
        rnn["recurrent_activation"] = "sigmoid"
    if kind == "GRU":
        rnn["reset_after"] = True
    return json.dumps(
        {
            "class_name": "Sequential",
            "config": {
                "name": "bench",
                "layers": [
                    {
                        "class_name": "InputLayer",
                        "config": {"batch_shape": [None, T, D], "name": "x"},
                    },
                    {"class_name": kind, "config": rnn},
                    {"class_name": "Dense", "config": {"name": "head", "units": K}},
                ],
            },
        }
    )


def write_npz(path: Path, kind: str, T: int | None, D: int, M: int) -> dict[str, np.ndarray]:
    w = make_weights(kind, D, M)
    np.savez(path, __config__=np.array(keras_config(kind, T, D, M)), **w)
    return w


# ----------------------------------------------------------------------------- engine


def torch_runner(kind: str, w: dict[str, np.ndarray], D: int, M: int):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(THREADS)
    cls = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind]
    rnn = cls(D, M, batch_first=True)
    head = torch.nn.Linear(M, K)
    g = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]

    def reorder(a: np.ndarray) -> np.ndarray:
        # Keras gate order -> PyTorch's: LSTM i,f,c,o -> i,f,g,o (same); GRU z,r,h -> r,z,n.
        if kind == "GRU":
            z, r, h = np.split(a, 3, axis=-1)
            return np.concatenate([r, z, h], axis=-1)
        return a

    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(reorder(w["rnn/kernel"]).T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(reorder(w["rnn/recurrent_kernel"]).T.copy()))
        b = w["rnn/bias"]
        if kind == "GRU":
            rnn.bias_ih_l0.copy_(torch.from_numpy(reorder(b[0])))
            rnn.bias_hh_l0.copy_(torch.from_numpy(reorder(b[1])))
        else:
            rnn.bias_ih_l0.copy_(torch.from_numpy(b))
            rnn.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(w["head/kernel"].T.copy()))
        head.bias.copy_(torch.from_numpy(w["head/bias"]))
    assert g >= 1

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out, _ = rnn(torch.from_numpy(x))
            return head(out[:, -1]).numpy()

    return run


def keras_runner(path: Path, kind: str, T: int, D: int, M: int):  # type: ignore[no-untyped-def]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    layer = getattr(keras.layers, kind)(M, name="rnn")
    model = keras.Sequential([keras.Input((T, D)), layer, keras.layers.Dense(K, name="head")])
    with np.load(path) as z:
        model.get_layer("rnn").set_weights(
            [z["rnn/kernel"], z["rnn/recurrent_kernel"], z["rnn/bias"]]
        )
        model.get_layer("head").set_weights([z["head/kernel"], z["head/bias"]])

    def run(x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        # batch_size None is Keras's default (32), as model.predict(X) runs it.
        return model.predict(x, batch_size=batch_size, verbose=0)

    return run


def bench_engine(kinds: list[str], peers: list[str]) -> list[dict[str, object]]:
    import rnninspect

    peak = sgemm_peak()
    print(f"float32 matmul peak through NumPy's BLAS: {peak:.1f} GFLOP/s ({THREADS} threads)")
    rows = []
    for kind in kinds:
        for N, T, D, M in SHAPES:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "m.npz"
                w = write_npz(path, kind, T, D, M)
                x = np.random.default_rng(1).standard_normal((N, T, D)).astype(np.float32)
                model = rnninspect.load_model(path)
                ours_y = model.forward(x)
                t_ours = best_of(lambda: model.forward(x))
                row: dict[str, object] = {"kind": kind, "shape": (N, T, D, M), "ours_s": t_ours}
                gf = flops(kind, N, T, D, M) / t_ours / 1e9
                row["gflops"] = gf
                row["peak_frac"] = gf / peak
                if "torch" in peers:
                    run = torch_runner(kind, w, D, M)
                    ty = run(x)
                    row["torch_s"] = best_of(lambda: run(x))
                    row["torch_equal"] = bool(np.allclose(ours_y, ty, rtol=1e-4, atol=1e-5))
                if "keras" in peers:
                    run = keras_runner(path, kind, T, D, M)
                    ky = run(x, N)
                    row["keras_s"] = best_of(lambda: run(x, N), repeat=2)
                    row["keras_equal"] = bool(np.allclose(ours_y, ky, rtol=1e-4, atol=1e-5))
                    row["keras_default_s"] = best_of(lambda: run(x), repeat=1)
                rows.append(row)
                _print_engine_row(row)
                _print_feasibility(row, kind, peak)
    return rows


def _print_feasibility(r: dict[str, object], kind: str, peak: float) -> None:
    """What each speed target asks of this machine: the GFLOP/s (and share of the
    matmul peak) that beating the peer by the target ratio would take."""
    N, T, D, M = r["shape"]  # type: ignore[misc]
    work = flops(kind, N, T, D, M)
    parts = []
    for key, label, ratio in (("torch_s", "PyTorch", 1.3), ("keras_s", "Keras (batch N)", 4.0)):
        if key in r:
            need = work / (float(r[key]) / ratio) / 1e9  # type: ignore[arg-type]
            parts.append(
                f"{ratio}x {label} needs {need:.0f} GFLOP/s ({100 * need / peak:.0f}% of peak)"
            )
    if parts:
        print("    " + "; ".join(parts), flush=True)


def _print_engine_row(r: dict[str, object]) -> None:
    ours = float(r["ours_s"])  # type: ignore[arg-type]
    text = f"{r['kind']:9s} (N,T,D,M)={r['shape']}: rnninspect {ours * 1000:8.1f} ms, "
    text += (
        f"{float(r['gflops']):6.1f} GFLOP/s ({100 * float(r['peak_frac']):4.1f}% of matmul peak)"  # type: ignore[arg-type]
    )
    if "torch_s" in r:
        t = float(r["torch_s"])  # type: ignore[arg-type]
        text += f" | torch {t * 1000:8.1f} ms -> {t / ours:5.2f}x (equal={r['torch_equal']})"
    if "keras_s" in r:
        k = float(r["keras_s"])  # type: ignore[arg-type]
        d = float(r["keras_default_s"])  # type: ignore[arg-type]
        text += (
            f" | keras predict(batch_size=N) {k * 1000:8.1f} ms -> {k / ours:5.2f}x "
            f"(equal={r['keras_equal']}), predict(X) {d * 1000:8.1f} ms -> {d / ours:5.2f}x"
        )
    print(text, flush=True)


# ----------------------------------------------------------------------------- process


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def bench_process() -> None:
    import compileall

    seed = ROOT / "sample_models" / "seed" / "model.keras"
    # Bytecode as an installed package has it (pip compiles at install; an editable
    # install under PYTHONDONTWRITEBYTECODE would recompile every module every run,
    # while Keras's own modules are compiled).
    compileall.compile_dir(str(ROOT / "rnninspect"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        x = Path(tmp) / "x.npy"
        np.save(x, np.random.default_rng(0).standard_normal((256, 10, 3)).astype(np.float32))
        ours_cmd = [
            sys.executable,
            "-m",
            "rnninspect",
            "forward",
            str(seed),
            str(x),
            "-o",
            f"{tmp}/y.npy",
        ]
        ours = min(_timed(ours_cmd) for _ in range(5))
        help_t = min(_timed([sys.executable, "-m", "rnninspect", "--help"]) for _ in range(5))
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "rnninspect", "--help"],
            capture_output=True,
            text=True,
        ).stderr
        heavy = [
            m
            for m in ("h5py", "rich.console", "rich.table")
            if f" {m}\n" in probe or f"| {m}\n" in probe
        ]
        print(
            f"rnninspect forward (seed .keras, N=256): {ours * 1000:.0f} ms; --help {help_t * 1000:.0f} ms, "
            f"imports on --help: {', '.join(heavy) or 'no h5py, no rich'}"
        )
        floor = min(_timed([sys.executable, "-c", "import numpy"]) for _ in range(5))
        print(f"floor: python -c 'import numpy' takes {floor * 1000:.0f} ms")
        if not have("keras"):
            print("keras not installed: whole-process comparison skipped")
            return
        script = Path(tmp) / "k.py"
        script.write_text(
            "import sys, numpy as np, keras\n"
            "m = keras.saving.load_model(sys.argv[1])\n"
            "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))\n"
        )
        for backend in ("numpy", "tensorflow"):
            if backend == "numpy" and not have("scipy"):  # Keras's NumPy backend needs SciPy
                print("scipy not installed: Keras NumPy-backend comparison skipped")
                continue
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            cmd = [sys.executable, str(script), str(seed), str(x), f"{tmp}/k.npy"]
            theirs = min(_timed(cmd, env) for _ in range(3))
            same = np.allclose(
                np.load(f"{tmp}/y.npy"), np.load(f"{tmp}/k.npy"), rtol=1e-4, atol=1e-5
            )
            print(
                f"Keras 3 ({backend} backend) load+predict script: {theirs * 1000:.0f} ms -> "
                f"rnninspect takes {ours / theirs:.3f}x of it (target <= 0.15; outputs equal={same}; "
                f"importing NumPy alone is {floor / theirs:.3f}x)"
            )


# ----------------------------------------------------------------------------- memory


def _peak_rss_mib(cmd: list[str]) -> tuple[float, float]:
    """Run cmd; its peak resident set size (MiB, as the OS reports it) and wall time."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t0 = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], check=True, capture_output=True, text=True
    )
    rss, secs = out.stdout.split()
    return float(rss), float(secs)


def bench_memory(kinds: list[str]) -> None:
    N, T, D, M = 335_544, 100, 16, 16  # 2 GiB of float32 input; (N,T,M) states are 2 GiB too
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        x = Path(tmp) / "x.npy"
        arr = np.lib.format.open_memmap(x, mode="w+", dtype=np.float32, shape=(N, T, D))
        rng = np.random.default_rng(0)
        for i in range(0, N, 8192):
            arr[i : i + 8192] = rng.standard_normal((min(8192, N - i), T, D), dtype=np.float32)
        arr.flush()
        del arr
        print(f"input {x.stat().st_size / 2**30:.2f} GiB (N={N}, T={T}, D={D})")
        for kind in kinds:
            model = Path(tmp) / f"{kind}.npz"
            write_npz(model, kind, T, D, M)
            cmd = [
                sys.executable,
                "-m",
                "rnninspect",
                "forward",
                str(model),
                str(x),
                "-o",
                f"{tmp}/y.npy",
                "-q",
            ]
            rss, secs = _peak_rss_mib(cmd)
            print(
                f"{kind:9s} forward over 2 GiB input: peak RSS {rss:6.0f} MiB (target < 300), {secs:.1f} s"
            )
            out = Path(tmp) / "states.npy"
            cmd = [
                sys.executable,
                "-m",
                "rnninspect",
                "trace",
                str(model),
                str(x),
                "-o",
                str(out),
                "-q",
            ]
            rss, secs = _peak_rss_mib(cmd)
            size = out.stat().st_size / 2**30
            print(
                f"{kind:9s} trace -o states.npy ({size:.2f} GiB): peak RSS {rss:6.0f} MiB (target < 400), {secs:.1f} s"
            )
            out.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["engine", "process", "memory"], action="append")
    ap.add_argument("--kinds", default="SimpleRNN,LSTM,GRU")
    args = ap.parse_args()
    only = set(args.only or ["engine", "process", "memory"])
    kinds = args.kinds.split(",")
    peers = [p for p, mod in (("torch", "torch"), ("keras", "keras")) if have(mod)]
    import numpy

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {THREADS} cores, "
        f"Python {platform.python_version()}, NumPy {numpy.__version__}"
    )
    print(f"peers: {', '.join(peers) or 'none installed'}")
    if "engine" in only:
        bench_engine(kinds, peers)
    if "process" in only:
        bench_process()
    if "memory" in only:
        bench_memory(kinds)
    _ = resource


if __name__ == "__main__":
    main()
