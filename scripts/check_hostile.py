"""Acceptance run for careless and hostile use (issue 11): every case as a real process.

For each case: the exit code against the documented one, exactly one line on stderr
(none for a success), no traceback, no temporary file left, the files the case reads
(and an earlier output) unchanged, wall time and peak resident memory (the largest of
the command and its parse child, from wait4). Prints one row per case and a summary;
exits 1 if any case misses its target (30 s, 1 GiB, the right code and message).

    python scripts/check_hostile.py            # all cases
    python scripts/check_hostile.py -k random  # cases whose name contains "random"
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
SEED = SAMPLES / "seed" / "model.keras"
VARIABLE = SAMPLES / "variable_t" / "model.keras"
EMBEDDING = SAMPLES / "embedding" / "model.keras"
GRAPH = SAMPLES / "attention_seq2seq" / "model.keras"  # inputs enc_in (8, 3), dec_in (6, 2)
MULTI_OUT = SAMPLES / "multi_output" / "model.keras"  # three outputs
HANG = sorted((ROOT / "tests" / "fuzz_regressions").glob("hang-*"))[0]
TIME = "/usr/bin/time"  # GNU time: -f %M is the peak resident set size in KiB
MAX_SECONDS = 30.0
MAX_RSS_MIB = 1024.0


@dataclass
class Case:
    name: str
    args: list[str]
    code: int
    fragment: str = ""  # must appear in the stderr line
    shell: str | None = None  # run through bash: {cmd} is the command
    env: dict[str, str] = field(default_factory=dict)
    signal_after: tuple[Callable[[], bool], int] | None = None  # (ready?, signal)
    during: Callable[[], None] | None = None  # done once the run is under way
    stdin: str | None = None  # a file fed on stdin
    stdout: str | None = None  # a file stdout goes to
    guarded: list[str] = field(default_factory=list)  # files that must not change
    check: Callable[[], str | None] | None = None  # extra check: None or what is wrong
    lines: int | None = None  # stderr lines expected (default: 1 on failure, 0 else)


@dataclass
class Result:
    case: Case
    code: int
    seconds: float
    rss_mib: float
    problems: list[str]


def sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def run_case(case: Case, work: Path) -> Result:
    # Peak memory is measured by /usr/bin/time around the command: a process forked
    # from this (large) script would count this script's pages as its own.
    rss_file = work / ".rss"
    timing = [TIME, "-f", "%M", "-o", str(rss_file)]
    py = [sys.executable, "-m", "rnninspect", *case.args]
    before = {p: sha(work / p) for p in case.guarded}
    env = {**os.environ, **case.env}
    if case.shell is not None:

        def quoted(argv: list[str]) -> str:
            return " ".join(f"'{a}'" for a in argv)

        script = case.shell.format(cmd=quoted(timing + py), time=quoted(timing), py=quoted(py))
        argv = ["bash", "-c", script]
    else:
        argv = timing + py
    stdin = open(work / case.stdin, "rb") if case.stdin else subprocess.DEVNULL  # noqa: SIM115
    stdout = open(case.stdout, "wb") if case.stdout else subprocess.DEVNULL  # noqa: SIM115
    err_path = work / ".stderr"
    with open(err_path, "wb") as err:
        begin = time.monotonic()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=err, cwd=work, env=env)
        if case.signal_after is not None or case.during is not None:
            ready = case.signal_after[0] if case.signal_after else (lambda: True)
            deadline = time.monotonic() + 60
            while not ready() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            if case.during is not None:
                case.during()
            if case.signal_after is not None and proc.poll() is None:
                for pid in children(proc.pid):  # the command, under /usr/bin/time
                    os.kill(pid, case.signal_after[1])
        proc.wait()
        seconds = time.monotonic() - begin
    for fh in (stdin, stdout):
        if not isinstance(fh, int):
            fh.close()
    text = err_path.read_text(errors="replace")
    err_path.unlink()
    problems = []
    code = proc.returncode
    if code != case.code:
        problems.append(f"exit {code}, want {case.code}")
    lines = text.splitlines()
    want_lines = case.lines if case.lines is not None else (0 if case.code == 0 else 1)
    if len(lines) != want_lines:
        problems.append(f"{len(lines)} stderr lines: {text.strip()[:300]!r}")
    if "Traceback" in text or "Exception ignored" in text or "internal error" in text:
        problems.append("traceback or internal error")
    if case.fragment and case.fragment not in text:
        problems.append(f"stderr lacks {case.fragment!r}: {text.strip()[:200]!r}")
    left = [p.name for p in work.rglob("*.tmp")]
    if left:
        problems.append(f"left behind: {left}")
    for p, digest in before.items():
        if sha(work / p) != digest:
            problems.append(f"{p} changed")
    if case.check is not None:
        wrong = case.check()
        if wrong:
            problems.append(wrong)
    try:
        rss = float(rss_file.read_text().split()[-1]) / 1024
        rss_file.unlink()
    except (OSError, ValueError, IndexError):
        rss = float("nan")
    if seconds > MAX_SECONDS:
        problems.append(f"took {seconds:.1f} s")
    if rss > MAX_RSS_MIB:
        problems.append(f"peak RSS {rss:.0f} MiB")
    return Result(case, code, seconds, rss, problems)


# ----------------------------------------------------------------------- fixtures


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def forged_zip(path: Path, members: dict[str, bytes], **fields: int) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info in zf.infolist():
            for k, v in fields.items():
                setattr(info, k, v)


def keras_members(src: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(src) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def edited_keras(src: Path, dst: Path, config: Callable[[dict], dict] | None = None,
                 weights: Callable[[h5py.File], None] | None = None) -> None:  # fmt: skip
    members = keras_members(src)
    if config is not None:
        members["config.json"] = json.dumps(config(json.loads(members["config.json"]))).encode()
    if weights is not None:
        tmp = dst.with_suffix(".h5part")
        tmp.write_bytes(members["model.weights.h5"])
        with h5py.File(tmp, "r+") as h5:
            weights(h5)
        members["model.weights.h5"] = tmp.read_bytes()
        tmp.unlink()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def input_shape(T: int) -> Callable[[dict], dict]:
    def edit(c: dict) -> dict:
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, T, 3]
        return c

    return edit


def build(work: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(work / "x.npy", rng.standard_normal((4, 10, 3)).astype(np.float32))
    np.save(work / "xv.npy", rng.standard_normal((4, 50, 3)).astype(np.float32))
    (work / "link.npy").symlink_to("x.npy")
    os.link(work / "x.npy", work / "hard.npy")
    shutil.copy(SAMPLES / "seed" / "notebook.npz", work / "w.npz")
    shutil.copy(SAMPLES / "seed" / "config.json", work / "c.json")
    shutil.copy(SAMPLES / "seed" / "model.weights.h5", work / "w.weights.h5")
    (work / "y.npy").write_bytes(b"an earlier result")
    os.mkfifo(work / "fifo.keras")
    os.mkfifo(work / "fifo.json")
    # a big input, truncated under the run
    big = np.lib.format.open_memmap(work / "big.npy", "w+", np.float32, (400_000, 100, 3))
    big[:] = 0.25
    big.flush()
    del big
    # .keras whose config.json inflates from ~1.5 MiB to 1.5 GiB (the case)
    members = keras_members(SEED)
    with zipfile.ZipFile(work / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name != "config.json":
                zf.writestr(name, data)
        with zf.open("config.json", "w", force_zip64=True) as fh:
            fh.write(members["config.json"][:-1])
            spaces = b" " * (1 << 24)
            for _ in range(96):
                fh.write(spaces)
            fh.write(b"}")
    # the same, its directory declaring 1000 bytes
    with zipfile.ZipFile(work / "liar.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name != "config.json":
                zf.writestr(name, data)
        zf.writestr("config.json", members["config.json"][:-1] + b" " * (64 << 20) + b"}")
        zf.getinfo("config.json").file_size = 1000
    # sparse 2 GiB --config
    with open(work / "sparse.json", "wb") as fh:
        fh.truncate(2 << 30)
    # .npz model with a 1.6 GB member of a shape the model cannot use
    with np.load(SAMPLES / "seed" / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files}
    with zipfile.ZipFile(work / "huge.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            if k != "dense/kernel":
                zf.writestr(f"{k}.npy", npy_bytes(v))
        with zf.open("dense/kernel.npy", "w", force_zip64=True) as fh:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (5, 80_000_000)}
            )
            fh.write(header.getvalue())
            zeros = bytes(1 << 24)
            left = 5 * 80_000_000 * 4
            while left:
                fh.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
    # input .npz members: 4 TB declared, Deflate64, encrypted
    x = npy_bytes(np.zeros((2, 10, 3), np.float32))
    forged_zip(work / "x4tb.npz", {"x.npy": x}, file_size=4 << 40)
    forged_zip(work / "x64.npz", {"x.npy": x}, compress_type=9)
    forged_zip(work / "xenc.npz", {"x.npy": x}, flag_bits=1)
    forged_zip(work / "m64.keras", members, compress_type=9)
    forged_zip(work / "menc.keras", members, flag_bits=1)
    layer_members = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
    forged_zip(work / "w64.npz", layer_members, compress_type=9)
    # models declaring T = 10**12 and T = 0; an Embedding with no vocabulary
    edited_keras(SEED, work / "tbig.keras", config=input_shape(10**12))
    edited_keras(SEED, work / "t0.keras", config=input_shape(0))

    def no_vocabulary(c: dict) -> dict:
        for layer in c["config"]["layers"]:
            if layer["class_name"] == "Embedding":
                layer["config"]["input_dim"] = 0
        return c

    def empty_embeddings(h5: h5py.File) -> None:
        v = h5["layers/embedding/vars"]
        e = v["0"][()]
        del v["0"]
        v["0"] = np.zeros((0, e.shape[1]), e.dtype)

    edited_keras(EMBEDDING, work / "v0.keras", config=no_vocabulary, weights=empty_embeddings)
    np.save(work / "ids.npy", np.array([[1.0, 1e20, 2.0] + [1.0] * 6]))  # T = 9
    (work / "big.csv").write_bytes(b"1\n" * (15 << 19))  # 15 MiB: 7.9 million values

    # HDF5: a hard-link DAG of 2**30 paths, and a hanging file with a sparse 1 TB tail
    def dag(h5: h5py.File) -> None:
        nodes = [h5["layers"].create_group("junk")]
        for i in range(30):
            nodes.append(nodes[-1].create_group(f"n{i}"))
        for a, b in itertools.pairwise(nodes):
            a["again"] = b
        nodes[-1]["back"] = nodes[0]

    edited_keras(SEED, work / "dag.keras", weights=dag)
    shutil.copy(HANG, work / "hang.h5")
    os.truncate(work / "hang.h5", 1 << 40)
    shutil.copy(HANG, work / "hang2.h5")
    # graph models and the newer commands
    np.save(work / "enc.npy", rng.standard_normal((4, 8, 3)).astype(np.float32))
    np.save(work / "dec.npy", rng.standard_normal((4, 6, 2)).astype(np.float32))
    np.savez(work / "xs.npz", enc_in=np.load(work / "enc.npy"), dec_in=np.load(work / "dec.npy"))
    (work / "enc_link.npy").symlink_to("enc.npy")
    (work / "x_link.png").symlink_to("x.npy")
    (work / "x_link.npz").symlink_to("x.npy")
    shutil.copy(SAMPLES / "seed" / "model.h5", work / "m.h5")
    shutil.copy(SEED, work / "cfg.keras")
    np.savez(work / "s0.npz", simple_rnn=np.zeros((2, 5), np.float32))
    os.mkfifo(work / "fifo_ref.npz")
    with open(work / "bigref.npy", "wb") as fh:  # declares 40 GB, holds nothing
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10)}
        )
    np.save(work / "ref.npy", np.zeros((4, 2), np.float32))


def cases(work: Path) -> list[Case]:
    seed, var, emb, graph = str(SEED), str(VARIABLE), str(EMBEDDING), str(GRAPH)
    long_name = "n" * 300
    tmp_of = lambda d: lambda: any(p.suffix == ".tmp" for p in d.iterdir())  # noqa: E731
    child_busy = lambda: time.sleep(2.0) or True  # noqa: E731

    def mode_is(path: str, mode: int) -> Callable[[], str | None]:
        def check() -> str | None:
            got = (work / path).stat().st_mode & 0o777
            return None if got == mode else f"{path} mode {got:o}, want {mode:o}"

        return check

    def truncate_big() -> None:
        os.truncate(work / "big.npy", (work / "big.npy").stat().st_size // 3)

    states = work / "st"
    states.mkdir(exist_ok=True)
    L: list[Case] = [
        # --- data loss
        Case("o-is-input", ["forward", seed, "x.npy", "-o", "x.npy"], 2, "refusing", guarded=["x.npy"]),
        Case("o-is-input-trace", ["trace", seed, "x.npy", "-o", "x.npy"], 2, "refusing", guarded=["x.npy"]),
        Case("o-symlink-to-input", ["forward", seed, "x.npy", "-o", "link.npy"], 2, "refusing", guarded=["x.npy"]),
        Case("o-hardlink-of-input", ["forward", seed, "x.npy", "-o", "hard.npy"], 2, "refusing", guarded=["x.npy"]),
        Case("o-other-spelling", ["forward", seed, "x.npy", "-o", "./st/../x.npy"], 2, "refusing", guarded=["x.npy"]),
        Case("o-is-model", ["forward", "w.npz", "--random", "2", "-o", "w.npz"], 2, "model file", guarded=["w.npz"]),
        Case("o-is-config", ["trace", "w.weights.h5", "--config", "c.json", "--random", "2", "-o", "c.json"], 2, "--config file", guarded=["c.json"]),
        Case("o-is-dev-null-link", ["forward", seed, "--random", "2", "-o", "st/null.npy"], 5, "regular file"),
        Case("failed-run-keeps-earlier", ["forward", seed, "--random", "2", "--length", "0", "-o", "y.npy"], 2, "--length", guarded=["y.npy"]),
        # --- signals
        Case("sigterm-trace-streaming", ["trace", var, "--random", "400000", "--length", "200", "-o", "st/states.npy"], 143, "terminated (SIGTERM)", signal_after=(tmp_of(states), signal.SIGTERM)),
        Case("sighup-trace-streaming", ["trace", var, "--random", "400000", "--length", "200", "-o", "st/states.npy"], 129, "terminated (SIGHUP)", signal_after=(tmp_of(states), signal.SIGHUP)),
        Case("sigint-trace-streaming", ["trace", var, "--random", "400000", "--length", "200", "-o", "st/states.npy"], 130, "interrupted", signal_after=(tmp_of(states), signal.SIGINT)),
        Case("sigterm-while-parsing", ["summary", "hang2.h5"], 143, "terminated (SIGTERM)", env={"RNNINSPECT_PARSE_SECONDS": "60"}, signal_after=(child_busy, signal.SIGTERM)),
        # signal 0 is no signal: the input is truncated once the first chunk is written
        Case("input-truncated-mid-run", ["forward", var, "big.npy", "-o", "st/y.npy"], 4, "truncated", signal_after=(tmp_of(states), 0), during=truncate_big),
        # --- hangs
        Case("fifo-model", ["summary", "fifo.keras"], 3, "FIFO"),
        Case("fifo-config", ["summary", "w.weights.h5", "--config", "fifo.json"], 3, "FIFO"),
        Case("dev-zero-model", ["summary", "/dev/zero"], 3, "character device"),
        Case("dev-stdin-model", ["summary", "/dev/stdin"], 3, "regular file", shell="yes | {cmd}"),
        Case("hdf5-dag", ["summary", "dag.keras"], 0),
        Case("hang-with-sparse-1tb-tail", ["summary", "hang.h5"], 3, "did not finish"),
        # --- memory
        Case("dev-zero-input", ["forward", seed, "/dev/zero"], 4, "16 MiB"),
        Case("endless-stdin-yes", ["forward", seed, "-"], 4, "16 MiB", shell="yes 1 | {cmd}"),
        Case("endless-stdin-zeros", ["forward", seed, "-"], 4, "16 MiB", shell="cat /dev/zero | {cmd}"),
        Case("endless-stdin-npz-magic", ["forward", seed, "-"], 4, "512 MiB", shell="(printf 'PK\\003\\004'; cat /dev/zero) | {cmd}"),
        Case("stdin-npy-declaring-too-much", ["forward", seed, "-"], 4, "read from a stream", shell="(python3 -c \"import numpy as np,sys; np.lib.format.write_array_header_1_0(sys.stdout.buffer, {{'descr':'<f4','fortran_order':False,'shape':(10**9,10,3)}})\"; cat /dev/zero) | {cmd}"),
        Case("text-15mib-csv", ["forward", seed, "big.csv"], 4, "D=1"),
        Case("config-json-bomb", ["summary", "bomb.keras"], 3, "config.json"),
        Case("config-json-bomb-as-config", ["summary", "w.weights.h5", "--config", "bomb.keras"], 3, "bomb.keras"),
        Case("config-json-liar", ["summary", "liar.keras"], 3, "liar.keras"),
        Case("sparse-2gib-config", ["summary", "w.weights.h5", "--config", "sparse.json"], 3, "sparse.json"),
        Case("npz-model-1.6gb-member", ["summary", "huge.npz"], 3, "(5,80000000)"),
        Case("random-10M", ["forward", seed, "--random", "10000000", "--seed", "1", "-o", "st/y10m.npy", "-q"], 0),
        # --- exit codes
        Case("long-name-model", ["summary", f"{long_name}.keras"], 3, "too long"),
        Case("long-name-config", ["summary", "w.weights.h5", "--config", f"{long_name}.json"], 3, "too long"),
        Case("long-name-input", ["forward", seed, f"{long_name}.npy"], 4, "too long"),
        Case("long-name-output", ["forward", seed, "--random", "2", "-o", f"{long_name}.npy"], 5, "too long"),
        Case("npz-input-4tb-member", ["forward", seed, "x4tb.npz"], 4, "4,398,046,511,104"),
        Case("npz-input-deflate64", ["forward", seed, "x64.npz"], 4, "Deflate64"),
        Case("npz-input-encrypted", ["forward", seed, "xenc.npz"], 4, "encrypted"),
        Case("npz-stdin-deflate64", ["forward", seed, "-"], 4, "Deflate64", stdin="x64.npz"),
        Case("keras-deflate64", ["summary", "m64.keras"], 3, "Deflate64"),
        Case("keras-encrypted", ["summary", "menc.keras"], 3, "encrypted"),
        Case("npz-model-deflate64", ["summary", "w64.npz"], 3, "Deflate64"),
        Case("random-1e20-text", ["forward", seed, "--random", "1e20"], 2, "--random"),
        Case("random-10**20", ["forward", seed, "--random", str(10**20)], 2, "--random"),
        Case("length-1e15-text", ["forward", var, "--random", "2", "--length", "1e15"], 2, "--length"),
        Case("length-10**15", ["forward", var, "--random", "2", "--length", str(10**15)], 2, "--length"),
        Case("config-T-10**12", ["forward", "tbig.keras", "--random", "3"], 3, "T=1,000,000,000,000"),
        Case("seed-minus-1", ["forward", seed, "--random", "2", "--seed", "-1"], 2, "--seed"),
        Case("seed-2**32", ["forward", seed, "--random", "2", "--seed", str(1 << 32)], 2, "--seed"),
        Case("threads-superscript", ["forward", seed, "--random", "2"], 2, "RNNINSPECT_THREADS", env={"RNNINSPECT_THREADS": "²"}),
        Case("threads-arabic-digit", ["forward", seed, "--random", "2"], 2, "RNNINSPECT_THREADS", env={"RNNINSPECT_THREADS": "٣"}),
        Case("openblas-superscript", ["forward", seed, "--random", "2"], 0, env={"OPENBLAS_NUM_THREADS": "²"}),
        Case("omp-superscript", ["forward", seed, "--random", "2"], 0, env={"OMP_NUM_THREADS": "²"}),
        Case("parse-seconds-junk", ["summary", seed], 0, env={"RNNINSPECT_PARSE_SECONDS": "soon"}),
        Case("json-to-dev-full", ["forward", seed, "--random", "2", "--json"], 5, "<stdout>", stdout="/dev/full"),
        Case("table-to-dev-full", ["summary", seed], 5, "<stdout>", stdout="/dev/full"),
        Case("stdout-closed-json", ["forward", seed, "--random", "2", "--json"], 5, "stdout is closed", shell="{time} bash -c '\"$0\" \"$@\" >&-' {py}"),
        Case("stdout-closed-with-o", ["forward", seed, "--random", "2", "-o", "st/yc.npy"], 0, shell="{time} bash -c '\"$0\" \"$@\" >&-' {py}"),
        Case("stdin-closed", ["forward", seed, "-"], 4, "<stdin>", shell="{time} bash -c '\"$0\" \"$@\" <&-' {py}"),
        Case("stdout-read-only", ["summary", seed], 5, "<stdout>", shell="{cmd} 1</dev/null"),
        Case("stdin-write-only", ["forward", seed, "-"], 4, "<stdin>", shell="{time} bash -c '\"$0\" \"$@\" 0>/dev/null' {py}"),
        Case("embedding-no-vocabulary", ["summary", "v0.keras"], 3, "empty vocabulary"),
        # --- pipes
        Case("trace-json-head-c", ["trace", seed, "--random", "20000", "--json"], 0, shell="{cmd} | head -c 100 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        Case("summary-head", ["summary", str(SAMPLES / "lstm_stack" / "model.keras"), "--weights", "--full"], 0, shell="{cmd} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        Case("forward-table-true", ["forward", seed, "--random", "5000", "--full"], 0, shell="{cmd} | true; exit ${{PIPESTATUS[0]}}"),
        # --- messages
        Case("model-T-0", ["forward", "t0.keras", "--random", "2"], 3, "T=0 steps"),
        Case("float-id-1e20", ["forward", emb, "ids.npy"], 4, "id 100000000000000000000"),
        # --- permissions
        Case("umask-022", ["forward", seed, "--random", "2", "-o", "st/p.npy"], 0, shell="umask 022; {cmd}", check=mode_is("st/p.npy", 0o644)),
        Case("umask-077", ["trace", seed, "--random", "2", "-o", "st/p.npz"], 0, shell="umask 077; {cmd}", check=mode_is("st/p.npz", 0o600)),
        Case("umask-002-json", ["forward", seed, "--random", "2", "-o", "st/p.json"], 0, shell="umask 002; {cmd}", check=mode_is("st/p.json", 0o664)),
        # --- graph models and the newer commands: data loss
        Case("o-is-named-input", ["forward", graph, "--input", "enc_in=enc.npy", "--input", "dec_in=dec.npy", "-o", "dec.npy"], 2, "refusing", guarded=["dec.npy"]),
        Case("o-symlink-to-named-input", ["trace", graph, "--input", "enc_in=enc.npy", "--input", "dec_in=dec.npy", "-o", "enc_link.npy"], 2, "refusing", guarded=["enc.npy"]),
        Case("o-is-npz-input-of-graph", ["forward", graph, "xs.npz", "-o", "xs.npz"], 2, "refusing", guarded=["xs.npz"]),
        Case("export-o-is-model", ["export", "w.npz", "-o", "w.npz"], 2, "model file", guarded=["w.npz"]),
        Case("export-o-is-config", ["export", "w.weights.h5", "--config", "cfg.keras", "-o", "cfg.keras"], 2, "--config file", guarded=["cfg.keras"]),
        Case("plot-o-symlink-to-input", ["plot", seed, "x.npy", "-o", "x_link.png"], 2, "refusing", guarded=["x.npy"]),
        Case("trace-h5-o-is-model", ["trace", "m.h5", "--random", "2", "-o", "m.h5"], 2, "model file", guarded=["m.h5"]),
        Case("final-state-is-input", ["forward", seed, "x.npy", "--final-state", "x_link.npz"], 2, "refusing", guarded=["x.npy"]),
        Case("final-state-is-o", ["forward", seed, "--random", "2", "-o", "st/f.npz", "--final-state", "st/f.npz"], 2, "the same file"),
        Case("initial-state-is-o", ["trace", seed, "--random", "2", "--initial-state", "s0.npz", "-o", "s0.npz"], 2, "--initial-state file", guarded=["s0.npz"]),
        Case("save-input-is-model", ["forward", "w.npz", "--random", "2", "--save-input", "w.npz"], 2, "model file", guarded=["w.npz"]),
        Case("diagnose-save-input-is-model", ["diagnose", "w.npz", "--random", "2", "--save-input", "w.npz"], 2, "model file", guarded=["w.npz"]),
        Case("explain-save-input-is-model", ["explain", "w.npz", "--step", "0", "--random", "1", "--save-input", "w.npz"], 2, "model file", guarded=["w.npz"]),
        # signals
        Case("sigterm-trace-h5", ["trace", var, "--random", "400000", "--length", "200", "-o", "st/states.h5"], 143, "terminated (SIGTERM)", signal_after=(tmp_of(states), signal.SIGTERM)),
        Case("sigterm-final-state", ["forward", var, "--random", "400000", "--length", "200", "-o", "st/y.npy", "--final-state", "st/f.npz"], 143, "terminated (SIGTERM)", signal_after=(tmp_of(states), signal.SIGTERM)),
        Case("sighup-graph-forward", ["forward", graph, "--random", "2000000", "-o", "st/y.npz"], 129, "terminated (SIGHUP)", signal_after=(tmp_of(states), signal.SIGHUP)),
        # hangs and memory
        Case("graph-endless-stdin-npz", ["forward", graph, "-"], 4, "512 MiB", shell="(printf 'PK\\003\\004'; cat /dev/zero) | {cmd}"),
        Case("graph-named-input-dev-zero", ["forward", graph, "--input", "enc_in=/dev/zero", "--input", "dec_in=dec.npy"], 4, "16 MiB"),
        Case("graph-random-1M", ["forward", graph, "--random", "1000000", "--seed", "1", "-o", "st/ya.npy", "-q"], 0),
        Case("diagnose-dev-zero", ["diagnose", seed, "/dev/zero"], 4, "16 MiB"),
        Case("verify-fifo-reference", ["verify", seed, "fifo_ref.npz"], 4, "regular file"),
        Case("verify-reference-declaring-40gb", ["verify", seed, "bigref.npy", "--input", "x.npy"], 4, "declares"),
        Case("verify-input-dev-zero", ["verify", seed, "ref.npy", "--input", "/dev/zero"], 4, "16 MiB"),
        Case("diff-fifo-model", ["diff", seed, "fifo.keras"], 3, "FIFO"),
        Case("initial-state-fifo", ["forward", seed, "--random", "2", "--initial-state", "fifo_ref.npz"], 4, "fifo_ref.npz"),
        # exit codes
        Case("graph-seed-minus-1", ["forward", graph, "--random", "2", "--seed", "-1"], 2, "--seed"),
        Case("export-long-name", ["export", seed, "-o", f"{long_name}.keras"], 5, "too long"),
        Case("plot-long-name", ["plot", seed, "--random", "1", "-o", f"{long_name}.png"], 5, "too long"),
        Case("multi-output-json-to-dev-full", ["forward", str(MULTI_OUT), "--random", "2", "--json"], 5, "<stdout>", stdout="/dev/full"),
        Case("diagnose-json-to-dev-full", ["diagnose", seed, "--random", "2", "--json"], 5, "<stdout>", stdout="/dev/full"),
        # pipes
        Case("diagnose-head", ["diagnose", seed, "--random", "4"], 0, shell="{cmd} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        Case("explain-head", ["explain", str(SAMPLES / "lstm_stack" / "model.keras")], 0, shell="{cmd} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        Case("graph-json-head-c", ["forward", str(MULTI_OUT), "--random", "20000", "--json"], 0, shell="{cmd} | head -c 100 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        Case("help-head", ["trace", "--help"], 0, shell="{cmd} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        # permissions
        Case("umask-022-export", ["export", seed, "-o", "st/e.keras"], 0, shell="umask 022; {cmd}", check=mode_is("st/e.keras", 0o644)),
        Case("umask-022-trace-h5", ["trace", seed, "--random", "2", "-o", "st/t.h5"], 0, shell="umask 022; {cmd}", check=mode_is("st/t.h5", 0o644)),
        Case("umask-077-final-state", ["forward", seed, "--random", "2", "--final-state", "st/f.npz"], 0, shell="umask 077; {cmd} >/dev/null", check=mode_is("st/f.npz", 0o600)),
        Case("umask-027-plot", ["plot", seed, "--random", "1", "-o", "st/p.png"], 0, shell="umask 027; {cmd}", check=mode_is("st/p.png", 0o640)),
    ]  # fmt: skip
    return L


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    args = ap.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHECK_TMP")) as tmp:
        work = Path(tmp)
        build(work)
        (work / "st" / "null.npy").parent.mkdir(exist_ok=True)
        (work / "st" / "null.npy").symlink_to("/dev/null")
        selected = [c for c in cases(work) if args.k in c.name]
        print(f"{'case':32s} {'exit':>4s} {'want':>4s} {'s':>6s} {'MiB':>6s}  result")
        for case in selected:
            result = run_case(case, work)
            ok = not result.problems
            failed += not ok
            print(
                f"{case.name:32s} {result.code:4d} {case.code:4d} {result.seconds:6.1f} "
                f"{result.rss_mib:6.0f}  {'ok' if ok else '; '.join(result.problems)}"
            )
            with contextlib.suppress(OSError):
                for p in (work / "st").iterdir():
                    if p.name != "null.npy":
                        p.unlink()
        print(f"{len(selected) - failed} of {len(selected)} cases meet every target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
