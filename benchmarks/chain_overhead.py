"""Does the graph engine cost chain models anything? Times ``Model.forward`` on the
same chain models with this checkout and with another one (e.g. the commit before the
graph redesign, checked out with ``git worktree add --detach ../old 1fa2e07``),
alternating, best of several runs each, and prints new/old ratios.

    python benchmarks/chain_overhead.py ../old

Like every benchmark here it runs as users' machines do: OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are unset for its own worker processes, and it reports the BLAS
kernel that ran (threadpoolctl, when installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROWS = [
    ("SimpleRNN", (1024, 100, 32, 128)),
    ("LSTM", (1024, 100, 32, 128)),
    ("GRU", (1024, 100, 32, 128)),
    ("LSTM", (64, 1000, 64, 256)),
    ("LSTM", (8, 100, 8, 32)),
]

WORKER = r"""
import json, sys, time, tempfile
import numpy as np
sys.path.insert(0, sys.argv[1])
import rnninspect
rng = np.random.default_rng(0)
out = {}
try:
    from threadpoolctl import threadpool_info
    out["blas"] = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()]
except ImportError:
    out["blas"] = "threadpoolctl not installed"
for kind, (N, T, D, M) in json.loads(sys.argv[2]):
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    bias = (2, 3 * M) if kind == "GRU" else (g * M,)
    arrays = {
        "rnn/kernel": (rng.standard_normal((D, g * M)) * 0.1).astype("float32"),
        "rnn/recurrent_kernel": (rng.standard_normal((M, g * M)) * 0.1).astype("float32"),
        "rnn/bias": (rng.standard_normal(bias) * 0.1).astype("float32"),
        "out/kernel": rng.standard_normal((M, 4)).astype("float32"),
        "out/bias": np.zeros(4, "float32"),
    }
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, T, D], "name": "in"}},
        {"class_name": kind, "config": {"name": "rnn", "units": M,
                                        **({"reset_after": True} if kind == "GRU" else {})}},
        {"class_name": "Dense", "config": {"name": "out", "units": 4}}]}}
    path = tempfile.mktemp(suffix=".npz")
    np.savez(path, __config__=np.array(json.dumps(cfg)), **arrays)
    m = rnninspect.load_model(path)
    x = rng.standard_normal((N, T, D)).astype("float32")
    m.forward(x)
    best = min(_t for _t in (
        (lambda t0: (m.forward(x), time.perf_counter() - t0)[1])(time.perf_counter())
        for _ in range(5)))
    out[f"{kind} {(N, T, D, M)}"] = best
print(json.dumps(out))
"""


def run(tree: Path) -> dict[str, object]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), json.dumps(ROWS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    other = Path(sys.argv[1]).resolve()
    best: dict[str, dict[str, float]] = {"new": {}, "old": {}}
    blas = None
    for _ in range(3):  # alternate, so load drifts hit both alike
        for label, tree in (("old", other), ("new", here)):
            found = run(tree)
            blas = found.pop("blas")
            for key, value in found.items():
                assert isinstance(value, float)
                best[label][key] = min(value, best[label].get(key, value))
    print(f"BLAS kernel: {blas}")
    print(f"{'row':40} {'old ms':>8} {'new ms':>8} {'new/old':>8}")
    for key in best["new"]:
        o, n = best["old"][key] * 1e3, best["new"][key] * 1e3
        print(f"{key:40} {o:8.1f} {n:8.1f} {n / o:8.2f}")


if __name__ == "__main__":
    main()
