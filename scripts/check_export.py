#!/usr/bin/env python
"""Check ``rnninspect export`` against Keras 3 itself: every model file in
``sample_models/``, in ``tests/data/export_models/`` (layer families the others lack:
CuDNN, attention, normalisation, stacked cells, ConvLSTM, graph features) and every
case in ``../shared/wild-models`` is exported to a Keras 3
``.keras`` archive and a ``.weights.h5`` by rnninspect, then Keras 3 loads them and
predicts on the reference input; the output must equal the reference Keras computed
from the original file (``rtol=1e-4, atol=1e-5``).

Developer-only, like ``make_sample_models.py``: run it with the reference venv
(tensorflow-cpu 2.21.0, keras 3.15.1). rnninspect runs in its own venv
(``--rnninspect-python``), so TensorFlow never enters its environment::

    /work/kenv/bin/python scripts/check_export.py [--rnninspect-python .venv/bin/python]
        [--only NAME ...] [--keep DIR] [--json report.json]

Per exported file it checks:

* ``keras.saving.load_model(model.keras)`` loads it (safe mode, no custom objects) and
  its ``predict`` equals the reference (``y`` of ``golden.npz``, ``y_tfkeras`` for
  tf_keras files, the wild case's ``y``);
* a model built from the archive's ``config.json`` takes the exported ``.weights.h5``
  with ``load_weights`` and predicts the same;
* the archive's weights file has Keras 3's own layout: the groups and dataset shapes
  Keras writes when it saves the model it loaded (``save_weights``) are exactly ours.

Weights-only originals are exported with their config (``--config config.json``), as a
user would. Exit code 1 if any check failed.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
WILD = ROOT.parent / "shared" / "wild-models"
REFS = ROOT / "tests" / "wild_refs"
RTOL, ATOL = 1e-4, 1e-5

FULL_FILES = ("model.keras", "model.h5", "tfkeras.keras", "tfkeras.h5", "layers.npz")
WEIGHTS_ONLY = ("model.weights.h5", "tfkeras_weights.h5", "notebook.npz")
TFKERAS = ("tfkeras.keras", "tfkeras.h5")  # tfkeras_weights.h5 goes with config.json (Keras 3)


def cases() -> list[dict]:
    """Every file to export: its path, config, reference input and outputs."""
    out = []
    for d in sorted(p for p in SAMPLES.iterdir() if (p / "golden.npz").is_file()):
        with np.load(d / "golden.npz") as z:
            g = {k: z[k] for k in z.files}
        for name in FULL_FILES + WEIGHTS_ONLY:
            if not (d / name).is_file():
                continue
            config = str(d / "config.json") if name in WEIGHTS_ONLY else None
            base = "y_tfkeras" if name in TFKERAS else "y"
            ys = (
                [g[base]]
                if base in g
                else [g[f"{base}/{i}"] for i in range(sum(k.startswith(base + "/") for k in g))]
            )
            out.append(
                {
                    "id": f"{d.name}/{name}",
                    "path": str(d / name),
                    "config": config,
                    "x": (
                        [g["x"]]
                        if "x" in g
                        else [g[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in g))]
                    ),
                    "y": ys,
                }
            )
    extra = ROOT / "tests" / "data" / "export_models"
    with np.load(extra / "refs.npz") as z:
        r = {k: z[k] for k in z.files}
    for name in sorted({k.split("/")[0] for k in r}):
        xs = [r[k] for k in sorted(k for k in r if k.startswith(f"{name}/x/"))]
        ys = [r[k] for k in sorted(k for k in r if k.startswith(f"{name}/y/"))]
        out.append(
            {
                "id": f"export_models/{name}",
                "path": str(extra / name),
                "config": None,
                "x": xs,
                "y": ys,
            }
        )
    if WILD.is_dir():
        index = json.loads((REFS / "index.json").read_text())
        for case, entry in sorted(index.items()):
            if entry["status"] != "ok":
                continue
            with np.load(REFS / entry["npz"]) as z:
                r = {k: z[k] for k in z.files}
            xs = (
                [r["x"]]
                if "x" in r
                else [r[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in r))]
            )
            ys = (
                [r["y"]]
                if "y" in r
                else [r[f"y/{i}"] for i in range(sum(k.startswith("y/") for k in r))]
            )
            cfg = entry["config"]
            config = None if cfg is None or case.endswith("_inferred") else str(WILD / case / cfg)
            out.append(
                {
                    "id": f"wild/{case}",
                    "path": str(WILD / case / entry["file"]),
                    "config": config,
                    "x": xs,
                    "y": ys,
                }
            )
    return out


EXPORTER = r"""
import json, sys, traceback
from pathlib import Path
import rnninspect
from rnninspect.export import export
jobs = json.loads(Path(sys.argv[1]).read_text())
done = {}
for job in jobs:
    try:
        m = rnninspect.load_model(job["path"], config=job["config"])
        notes = export(m, job["out"] + ".keras")
        export(m, job["out"] + ".weights.h5")
        done[job["id"]] = {"ok": True, "notes": notes}
    except Exception as exc:
        done[job["id"]] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
Path(sys.argv[2]).write_text(json.dumps(done))
"""


def run_exports(jobs: list[dict], python: str, work: Path) -> dict:
    spec = work / "jobs.json"
    spec.write_text(json.dumps(jobs))
    result = work / "done.json"
    subprocess.run([python, "-c", EXPORTER, str(spec), str(result)], check=True, cwd=ROOT)
    return json.loads(result.read_text())


def tree(path: str) -> dict[str, tuple]:
    import h5py

    found: dict[str, tuple] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: found.__setitem__(
                name, obj.shape if isinstance(obj, h5py.Dataset) else "group"
            )
        )
    return found


def close(got: list, want: list) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} outputs vs {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        a = np.asarray(a)
        if a.shape != b.shape:
            return f"output {i}: shape {a.shape} vs {b.shape}"
        if not np.allclose(a, b, rtol=RTOL, atol=ATOL):
            return f"output {i}: max abs diff {np.max(np.abs(a.astype(np.float64) - b)):.3g}"
    return None


def predict(model, xs: list) -> list:
    y = model.predict(xs[0] if len(xs) == 1 else xs, verbose=0)
    return list(y) if isinstance(y, (list, tuple)) else [y]


def check(case: dict, out: str) -> dict:
    import keras

    row: dict = {}
    try:
        model = keras.saving.load_model(out + ".keras", compile=False)
        row["loads"] = True
    except Exception as exc:
        row["loads"] = False
        row["error"] = f"load_model: {type(exc).__name__}: {exc}"[:500]
        return row
    why = close(predict(model, case["x"]), case["y"])
    row["equal"] = why is None
    if why:
        row["error"] = f"predict: {why}"
    with tempfile.TemporaryDirectory() as tmp:
        again = os.path.join(tmp, "again.weights.h5")
        model.save_weights(again)
        ours, keras_own = tree(out + ".weights.h5"), tree(again)
        row["layout"] = ours == keras_own
        if not row["layout"]:
            only_ours = sorted(set(ours.items()) - set(keras_own.items()))[:6]
            only_keras = sorted(set(keras_own.items()) - set(ours.items()))[:6]
            row["layout_diff"] = {"ours_only": only_ours, "keras_only": only_keras}
    try:
        import zipfile

        with zipfile.ZipFile(out + ".keras") as zf:
            config = zf.read("config.json").decode()
        fresh = keras.models.model_from_json(config)
        fresh.load_weights(out + ".weights.h5")
        why = close(predict(fresh, case["x"]), case["y"])
        row["weights_equal"] = why is None
        if why:
            row.setdefault("error", f"weights.h5: {why}")
    except Exception as exc:
        row["weights_equal"] = False
        row.setdefault("error", f"load_weights: {type(exc).__name__}: {exc}"[:500])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rnninspect-python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--only", nargs="*", help="case ids containing any of these strings")
    ap.add_argument("--keep", help="keep the exported files in this directory")
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    todo = cases()
    if args.only:
        todo = [c for c in todo if any(s in c["id"] for s in args.only)]
    work = Path(args.keep or tempfile.mkdtemp(prefix="check_export_"))
    work.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, c in enumerate(todo):
        c["out"] = str(work / f"{i:03d}_{c['id'].replace('/', '__')}")
        jobs.append({k: c[k] for k in ("id", "path", "config", "out")})
    exported = run_exports(jobs, args.rnninspect_python, work)
    report = {}
    for c in todo:
        row = dict(exported[c["id"]])
        if row["ok"]:
            try:
                row.update(check(c, c["out"]))
            except Exception:
                row["error"] = traceback.format_exc(limit=3)[-500:]
        report[c["id"]] = row
        ok = row.get("ok") and row.get("equal") and row.get("weights_equal") and row.get("layout")
        print(
            f"{'ok  ' if ok else 'FAIL'} {c['id']}"
            + ("" if ok else f": {row.get('error', row.get('layout_diff'))}"),
            flush=True,
        )
    groups = {
        "sample_models": [k for k in report if not k.startswith(("wild/", "export_models/"))],
        "export_models": [k for k in report if k.startswith("export_models/")],
        "wild-models": [k for k in report if k.startswith("wild/")],
    }
    failed = 0
    for label, keys in groups.items():
        rows = [report[k] for k in keys]
        counts = {
            "files": len(rows),
            "exported": sum(bool(r.get("ok")) for r in rows),
            "keras_loads": sum(bool(r.get("loads")) for r in rows),
            "predict_equal": sum(bool(r.get("equal")) for r in rows),
            "weights_h5_equal": sum(bool(r.get("weights_equal")) for r in rows),
            "keras_layout": sum(bool(r.get("layout")) for r in rows),
        }
        failed += counts["files"] - min(
            counts["predict_equal"], counts["weights_h5_equal"], counts["keras_layout"]
        )
        print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
