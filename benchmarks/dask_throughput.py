"""Throughput (samples/s) of an LSTM + Dense(4) on a Dask LocalCluster with one
worker and with two (one thread each), against the same model run in this process
by the NumPy engine (its own threads, one per core). The input is a Zarr store the
workers read; the output comes back to the client. Runs alternate between the
set-ups (and the in-process engine held to one thread, as a worker runs it),
several times, and the medians are compared.

    python benchmarks/dask_throughput.py [N] [T] [D] [M]    # default 65536 50 16 64

Needs the dask extra (pip install -e '.[dask]') and, to name the BLAS kernel,
threadpoolctl. Like every benchmark here it runs as users' machines do:
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for its own process (and so for
the workers it starts), and it reports the BLAS kernel that ran, here and on a worker.

On a machine with C cores: one worker uses one core (dask's workers run BLAS and the
engine on one thread each, as its nanny sets OPENBLAS_NUM_THREADS=1), two use two,
and the in-process engine uses all C on its own: two workers on a 2-core machine can
at best match it; the cluster's point is machines beyond this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, os, statistics, sys, tempfile, time
import numpy as np
import dask, dask.array as da, distributed, zarr
import rnninspect

N, T, D, M, reps = (int(v) for v in sys.argv[1:6])

def kernel():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    import numpy
    return [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
            for i in threadpool_info()]

def model_file(tmp):
    rng = np.random.default_rng(0)
    arrays = {
        "rnn/kernel": (rng.standard_normal((D, 4 * M)) * 0.1).astype("float32"),
        "rnn/recurrent_kernel": (rng.standard_normal((M, 4 * M)) * 0.1).astype("float32"),
        "rnn/bias": (rng.standard_normal(4 * M) * 0.1).astype("float32"),
        "out/kernel": rng.standard_normal((M, 4)).astype("float32"),
        "out/bias": np.zeros(4, "float32"),
    }
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, T, D], "name": "in"}},
        {"class_name": "LSTM", "config": {"name": "rnn", "units": M}},
        {"class_name": "Dense", "config": {"name": "out", "units": 4}}]}}
    path = os.path.join(tmp, "lstm.npz")
    np.savez(path, __config__=np.array(json.dumps(cfg)), **arrays)
    return path

if __name__ == "__main__":
    tmp = tempfile.mkdtemp()
    m = rnninspect.load_model(model_file(tmp))
    x = np.random.default_rng(1).standard_normal((N, T, D)).astype("float32")
    rows = 2048  # samples per task: 16+ tasks for 2 workers
    z = zarr.open_array(os.path.join(tmp, "x.zarr"), mode="w", shape=x.shape,
                        chunks=(rows, T, D), dtype="float32")
    z[:] = x
    out = {"kernel_here": kernel(), "cores": len(os.sched_getaffinity(0)),
           "versions": {"dask": dask.__version__, "distributed": distributed.__version__,
                        "zarr": zarr.__version__, "numpy": np.__version__}}
    clusters = {}
    with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}):
        for workers in (1, 2):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None,
                                               host="127.0.0.1")
            clusters[workers] = (cluster, distributed.Client(cluster, set_as_default=False))
    out["kernel_worker"] = list(clusters[1][1].run(kernel).values())[0]
    dx = da.from_zarr(os.path.join(tmp, "x.zarr"))

    def here():
        return m.forward(x)

    def here_one_thread():
        # As a worker runs: one engine thread, BLAS on one thread.
        from rnninspect import blas
        os.environ["RNNINSPECT_THREADS"] = "1"
        try:
            with blas.single_threaded():
                return m.forward(x)
        finally:
            del os.environ["RNNINSPECT_THREADS"]

    def on(workers):
        client = clusters[workers][1]
        def go():
            with client.as_current():
                return m.forward(dx).compute()
        return go

    runs = {"in-process engine": here, "in-process, 1 thread": here_one_thread,
            "1 worker": on(1), "2 workers": on(2)}
    results = {name: f() for name, f in runs.items()}  # warm-up: imports, the scatter
    times = {name: [] for name in runs}
    load_before = [round(v, 1) for v in os.getloadavg()]
    cpu = {name: [] for name in runs}

    def cpu_now(name):
        # CPU seconds of this process (client, scheduler, in-process engine: all
        # threads) and of the set-up's workers: what a run costs, however busy the
        # machine is (wall time on a shared machine is mostly waiting for a core).
        here_s = time.process_time()
        if "worker" not in name:
            return here_s
        client = clusters[int(name[0])][1]
        spent = client.run(lambda: sum(__import__("psutil").Process().cpu_times()[:2]))
        return here_s + sum(spent.values())

    for _ in range(reps):  # alternate, so load drifts hit all alike
        for name, f in runs.items():
            c0 = cpu_now(name)
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_now(name) - c0)
    out["cpu_s"] = {k: statistics.median(v) for k, v in cpu.items()}
    out["median_s"] = {k: statistics.median(v) for k, v in times.items()}
    out["best_s"] = {k: min(v) for k, v in times.items()}
    out["load"] = [load_before, [round(v, 1) for v in os.getloadavg()]]
    out["all_s"] = times
    ref = results["in-process engine"]
    out["max_abs_diff"] = {k: float(np.abs(v - ref).max()) for k, v in results.items()}
    out["workers_equal"] = bool(np.array_equal(results["1 worker"], results["2 workers"]))
    for cluster, client in clusters.values():
        client.close()
        cluster.close()
    print(json.dumps(out))
"""


def main() -> None:
    N, T, D, M = (
        int(a) for a in (sys.argv[1:5] + ["65536", "50", "16", "64"][len(sys.argv[1:5]) :])
    )
    reps = 5
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    here = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(here), env.get("PYTHONPATH", "")])
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(WORKER)  # a file, not -c: LocalCluster's spawned workers re-import __main__
    try:
        done = subprocess.run(
            [sys.executable, fh.name, str(N), str(T), str(D), str(M), str(reps)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        sys.exit(done.stderr[-4000:])
    found = json.loads(done.stdout.splitlines()[-1])
    print(f"LSTM + Dense(4), (N, T, D, M) = {(N, T, D, M)}, float32; {found['cores']} cores")
    print(f"versions: {found['versions']}")
    print(f"BLAS kernel here: {found['kernel_here']}; on a worker: {found['kernel_worker']}")
    print(f"load average before and after: {found['load']}")
    for label, pick in (("median", found["median_s"]), ("best", found["best_s"])):
        base = N / pick["in-process engine"]
        one = N / pick["1 worker"]
        head = f"set-up ({label})"
        print(f"{head:24} {'s':>7} {'samples/s':>11} {'vs 1 worker':>12} {'vs in-process':>14}")
        for name, seconds in pick.items():
            rate = N / seconds
            print(f"{name:24} {seconds:7.3f} {rate:11.0f} {rate / one:12.2f} {rate / base:14.2f}")
    print(f"{'CPU s per run (median)':24} {'CPU s':>7} {'samples/CPU s':>14} {'vs in-process':>14}")
    base_cpu = found["cpu_s"]["in-process engine"]
    for name, seconds in found["cpu_s"].items():
        print(f"{name:24} {seconds:7.3f} {N / seconds:14.0f} {base_cpu / seconds:14.2f}")
    print(
        f"runs (s): {json.dumps({k: [round(t, 3) for t in v] for k, v in found['all_s'].items()})}"
    )
    print(
        f"max |cluster - in-process|: {found['max_abs_diff']}; 1 worker == 2 workers exactly: "
        f"{found['workers_equal']}"
    )


if __name__ == "__main__":
    main()
