"""Regenerate the README's terminal examples from real runs (or check that they match).

    python scripts/readme_examples.py           # rewrite README.md with fresh outputs
    python scripts/readme_examples.py --check   # exit 1, with a diff, if any example is stale

An example is a fenced block with no language whose lines start with ``$ `` (the
command) followed by what it printed. Every command runs with bash in one scratch
directory shared by the whole README (so a file written by one example is there for
the next), with ``sample_models`` linked into it, ``COLUMNS=100`` unless the command
sets its own, and no colour. An HTML comment just before the fence can say more:

    <!-- setup: COMMAND -->     run first, silently (make the files an example reads)
    <!-- illustrative -->       not run: its commands name files a reader has, not us

stdout and stderr are both shown, as a terminal shows them; ``$ echo $?`` prints the
previous command's exit status.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\S*)\s*$")
COMMENT = re.compile(r"^<!--\s*(setup:|illustrative)\s*(.*?)\s*-->\s*$")


def run_block(commands: list[str], scratch: Path, env: dict[str, str]) -> list[str]:
    """Each command's line and its output, as a terminal session shows them."""
    lines: list[str] = []
    status = 0
    for command in commands:
        lines.append(f"$ {command}")
        if command.strip() == "echo $?":
            lines.append(str(status))
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        status = done.returncode
        printed = done.stdout.rstrip("\n").split("\n") if done.stdout.strip() else []
        # Rich pads centred titles and blank rows to the width; a README keeps no trailing blanks.
        lines.extend(p.rstrip() for p in printed)
    return lines


def regenerate(text: str) -> str:
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")
    env.pop("FORCE_COLOR", None)
    out: list[str] = []
    lines = text.split("\n")
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        scratch = Path(tmp)
        (scratch / "sample_models").symlink_to(ROOT / "sample_models")
        (scratch / "benchmarks").symlink_to(ROOT / "benchmarks")
        i = 0
        setups: list[str] = []
        illustrative = False
        while i < len(lines):
            line = lines[i]
            comment = COMMENT.match(line)
            if comment:
                if comment.group(1) == "setup:":
                    setups.append(comment.group(2))
                else:
                    illustrative = True
                out.append(line)
                i += 1
                continue
            fence = FENCE.match(line)
            if not fence:
                if line.strip():
                    setups, illustrative = [], False
                out.append(line)
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = lines[i + 1 : end]
            runnable = (
                fence.group(1) == ""
                and body
                and body[0].startswith("$ ")
                and not illustrative
                and all(_strip_env(c).split()[0] in ("rnninspect", "echo") for c in _commands(body))
            )
            if runnable:
                for setup in setups:
                    subprocess.run(["bash", "-c", setup], cwd=scratch, env=env, check=True)
                body = run_block(_commands(body), scratch, env)
            out.append(line)
            out.extend(body)
            out.append(lines[end])
            setups, illustrative = [], False
            i = end + 1
    return "\n".join(out)


def _commands(body: list[str]) -> list[str]:
    return [b[2:] for b in body if b.startswith("$ ")]


def _strip_env(command: str) -> str:
    return re.sub(r"^(\w+=\S*\s+)+", "", command)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale examples, write nothing")
    parser.add_argument("readme", nargs="?", default=str(ROOT / "README.md"))
    args = parser.parse_args()
    path = Path(args.readme)
    old = path.read_text()
    new = regenerate(old)
    if new == old:
        print("README examples: all as a real run prints them")
        return 0
    diff = difflib.unified_diff(
        old.split("\n"), new.split("\n"), "README.md", "fresh run", lineterm="", n=1
    )
    if args.check:
        print("\n".join(diff))
        return 1
    path.write_text(new)
    print("\n".join(diff))
    return 0


if __name__ == "__main__":
    sys.exit(main())
