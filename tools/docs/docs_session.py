"""Runs one documentation page's examples, in order, in one working folder (the page's
session): Python blocks share one namespace, like a notebook; console blocks run each
``$ command`` with bash. Reads the blocks from a JSON file, writes what each printed to
another, and stops at the first failure (exit status 1, its output saved).

    python docs_session.py blocks.json outputs.json      (the cwd is the page's folder)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
import traceback

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def commands(code: str) -> list[str]:
    """The ``$ ``-prompted commands of a console block (``\\`` continues a line)."""
    out, cur = [], None
    for line in code.splitlines():
        if cur is not None:
            cur += "\n" + line
        elif line.startswith("$ "):
            cur = line[2:]
        else:
            continue
        if not cur.endswith("\\"):
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def run_python(code: str, name: str, ns: dict) -> tuple[bool, str]:
    buf = io.StringIO()
    ok = True
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            exec(compile(code, name, "exec"), ns)
        except BaseException:
            ok = False
            print(traceback.format_exc(limit=-4), file=buf)
            print(err.getvalue()[-2000:], file=buf)
    return ok, buf.getvalue()


def run_console(code: str, timeout: float, fails: bool = False) -> tuple[bool, str]:
    """A transcript: each command, then what it printed (stdout; stderr only when it
    fails: progress bars are not shown). ``fails``: the last command must fail (an example
    of an error message), the others must not."""
    out = []
    cmds = commands(code)
    for i, cmd in enumerate(cmds):
        out.append(f"$ {cmd}")
        try:
            r = subprocess.run(["bash", "-c", "set -o pipefail\n" + cmd], capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, "\n".join([*out, f"timed out after {timeout:.0f} s"])
        if r.stdout.strip():
            out.append(ANSI.sub("", r.stdout).rstrip("\n"))
        last = fails and i == len(cmds) - 1
        if r.returncode:
            out += [r.stderr.rstrip("\n")[-3000:], f"(exit status {r.returncode})"]
            return last, "\n".join(out)
        if last:
            return False, "\n".join([*out, "expected this command to fail; it succeeded"])
    return True, "\n".join(out)


def main() -> None:
    blocks = json.loads(open(sys.argv[1]).read())
    results = []
    ns: dict = {"__name__": "__main__"}
    for b in blocks:
        t = time.perf_counter()
        if b["lang"] == "python":
            ok, text = run_python(b["code"], b["name"], ns)
        else:
            ok, text = run_console(b["code"], b["timeout"], b.get("fails", False))
        results.append({"ok": ok, "output": text, "seconds": time.perf_counter() - t})
        if not ok:
            break
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f)
    os.replace(tmp, sys.argv[2])
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
