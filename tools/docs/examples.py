"""MkDocs hook: every example a page shows is run when the site is built.

A page's fenced ``python`` and ``console`` blocks run in order, in one working folder per
page (``build/docs-run/generated/<page>/``, holding a few of scikit-image's sample images to
start from); what a block prints is shown under it (console: in the same block, after each
``$ command``). A failing block fails the build, naming the page, the block's line and the
output. Pictures a page shows as ``![…](run/NAME)`` are the files its blocks wrote there:
they are copied into the site, and a missing one is an error too.

Options after a fence's language:

- ``hide``: run, not shown (set-up, screenshots);
- ``output=markdown``: what it prints goes into the page as Markdown (tables), not code;
- ``norun="why"``: shown, not run; only for what cannot run here (a download of real
  weights, a server that does not stop, another machine). A Python block is still compiled,
  a ``masklab`` command is still parsed by the CLI (its verb and options must exist), and
  the build lists each such block with its reason;
- ``timeout=N``: seconds (default 600);
- ``fails`` (console): the last command must fail — an example of an error message, shown
  with its exit status.

``bash`` / ``sh`` fences must carry ``norun`` (they show commands without a prompt: set-up,
installs); ``console`` is for commands that run.

Pages run in parallel (``MASKLAB_DOCS_JOBS``, default 2); a page whose text did not change
is not run again while ``mkdocs serve`` is up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_session import commands

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "build" / "docs-run"
SAMPLES = ("astronaut.png", "coins.png", "chelsea.png", "coffee.png")
FENCE = re.compile(r"^```(python|console|bash|sh)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
OPTION = re.compile(r'(\w+)(?:=("[^"]*"|\S+))?')
PICTURE = re.compile(r"(!\[[^\]]*\]\()run/([^)\s]+)\)")
MAX_LINES = 60

_cache: dict[str, list[dict]] = {}  # page -> results, while `mkdocs serve` runs
_runs: dict[str, list[dict]] = {}  # page src_uri -> [{block, result}] of this build
_not_run: list[str] = []


def _options(info: str) -> dict:
    out = {}
    for k, v in OPTION.findall(info):
        out[k] = v.strip('"') if v else True
    return out


def _blocks(text: str) -> list[dict]:
    out = []
    for m in FENCE.finditer(text):
        opts = _options(m.group(2))
        out.append({"lang": m.group(1), "opts": opts, "code": m.group(3),
                    "line": text.count("\n", 0, m.start()) + 1, "span": m.span()})
    return out


def _check_not_run(page: str, b: dict) -> None:
    """A block shown but not run: Python compiles; masklab commands parse."""
    where = f"{page}:{b['line']}"
    if b["opts"].get("norun") in (None, True):
        raise PluginError(f"{where}: a `{b['lang']}` block that is not run needs "
                          'norun="why"')
    if b["lang"] == "python":
        try:
            compile(b["code"], where, "exec")
        except SyntaxError as e:
            raise PluginError(f"{where}: {e}") from e
    else:
        code = b["code"] if b["lang"] == "console" else "\n".join(
            "$ " + ln for ln in b["code"].replace("\\\n", " ").splitlines())
        for cmd in commands(code):
            _parse_masklab(where, cmd)
    _not_run.append(f"{where}: {b['opts']['norun']}")


def _parse_masklab(where: str, cmd: str) -> None:
    import click

    from masklab.cli import main

    words = shlex.split(cmd.replace("\\\n", " "), comments=True)
    if not words or words[0] != "masklab":
        return
    ctx = main.make_context("masklab", words[1:], resilient_parsing=False)
    group, args = main, _rest(ctx)
    while args:
        sub = group.get_command(ctx, args[0])
        if sub is None:
            raise PluginError(f"{where}: `{cmd}`: no command {args[0]!r}")
        paths = [p.type for p in sub.params if isinstance(p.type, click.Path)]
        kept = [t.exists for t in paths]
        for t in paths:  # the files of a command not run are the reader's, not here
            t.exists = False
        try:
            ctx = sub.make_context(args[0], args[1:], parent=ctx)
        except click.UsageError as e:
            raise PluginError(f"{where}: `{cmd}`: {e.format_message()}") from e
        finally:
            for t, e in zip(paths, kept, strict=True):
                t.exists = e
        if not isinstance(sub, click.Group):
            break
        group, args = sub, _rest(ctx)


def _rest(ctx) -> list[str]:
    """A group context's words after its own options (the sub-command and its words)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*ctx.protected_args, *ctx.args]


def _workdir(page: str) -> Path:
    return RUN / "generated" / page.removesuffix(".md")


def _run_page(page: str, text: str, blocks: list[dict]) -> list[dict]:
    key = hashlib.sha256(text.encode()).hexdigest()
    if _cache.get(page, [None])[0] == key:
        return _cache[page][1]
    work = _workdir(page)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    import skimage

    for name in SAMPLES:
        shutil.copyfile(Path(skimage.__file__).parent / "data" / name, work / name)
    todo = [b for b in blocks if "norun" not in b["opts"]]
    spec = [{"lang": "python" if b["lang"] == "python" else "console", "code": b["code"],
             "name": f"{page}:{b['line']}", "timeout": float(b["opts"].get("timeout", 600)),
             "fails": "fails" in b["opts"]}
            for b in todo]
    (work / ".blocks.json").write_text(json.dumps(spec))
    env = {**os.environ, "MASKLAB_OFFLINE": "1", "MASKLAB_HOME": str(work / ".masklab-home"),
           "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(
               [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                              if p]),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MASKLAB_DOCS_ROOT": str(ROOT)}
    if int(os.environ.get("MASKLAB_DOCS_JOBS", "2")) > 1:
        env.update({k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")})
    total = sum(s["timeout"] for s in spec) + 60
    try:
        subprocess.run([sys.executable, str(Path(__file__).with_name("docs_session.py")),
                        ".blocks.json", ".outputs.json"], cwd=work, env=env, timeout=total,
                       capture_output=True, text=True)
    except subprocess.TimeoutExpired as e:
        raise PluginError(f"{page}: its examples ran past {total:.0f} s") from e
    out = work / ".outputs.json"
    results = json.loads(out.read_text()) if out.is_file() else []
    for b, r in zip(todo, results, strict=False):
        if not r["ok"]:
            raise PluginError(f"{page}:{b['line']}: the example failed:\n{r['output']}")
    if len(results) < len(todo):
        raise PluginError(f"{page}: its examples stopped at block {len(results) + 1} of "
                          f"{len(todo)} (the session crashed)")
    _cache[page] = (key, results)
    return results


def on_files(files, config):
    _runs.clear()
    _not_run.clear()
    pages = []
    for f in files.documentation_pages():
        text = Path(f.abs_src_path).read_text(encoding="utf-8")
        blocks = _blocks(text)
        for b in blocks:
            if b["lang"] in ("bash", "sh") or "norun" in b["opts"]:
                _check_not_run(f.src_uri, b)
        if any("norun" not in b["opts"] for b in blocks) or PICTURE.search(text):
            pages.append((f.src_uri, text, blocks))
    jobs = int(os.environ.get("MASKLAB_DOCS_JOBS", "2"))
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        done = dict(zip([p[0] for p in pages],
                        pool.map(lambda p: _run_page(*p), pages), strict=True))
    for page, text, blocks in pages:
        results = iter(done[page])
        _runs[page] = [(b, None if "norun" in b["opts"] else next(results)) for b in blocks]
        for m in PICTURE.finditer(text):
            src = _workdir(page) / m.group(2)
            if not src.is_file():
                raise PluginError(f"{page}: shows run/{m.group(2)}, which its examples "
                                  "did not write")
            uri = src.relative_to(RUN).as_posix()
            if files.get_file_from_path(uri) is None:
                files.append(File(uri, str(RUN), config["site_dir"],
                                  config["use_directory_urls"]))
    ran = sum(r is not None for v in _runs.values() for _, r in v)
    seconds = sum(r["seconds"] for v in _runs.values() for _, r in v if r)
    print(f"docs examples: {ran} blocks run on {len(pages)} pages ({seconds:.0f} s of "
          f"examples); {len(_not_run)} shown without running:", file=sys.stderr)
    for line in _not_run:
        print(f"  {line}", file=sys.stderr)
    return files


def _clip(text: str) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES // 2], "…", *lines[-MAX_LINES // 2:]]
    return "\n".join(lines)


def _render(b: dict, r: dict | None) -> str:
    opts, code = b["opts"], b["code"].rstrip("\n")
    out = _clip(r["output"]) if r else ""
    if "hide" in opts:
        shown = ""
    elif b["lang"] == "console" and r:  # the transcript: each command, then its output
        shown = f"```console\n{out}\n```"
    else:
        lang = "bash" if b["lang"] in ("bash", "sh") else b["lang"]
        shown = f"```{lang}\n{code}\n```"
        if r and out and opts.get("output") != "markdown":
            shown += f"\n\n```text\n{out}\n```"
    if r and out and opts.get("output") == "markdown":
        shown += "\n\n" + r["output"].strip() + "\n"
    return shown


def on_page_markdown(markdown, page, config, files):
    runs = _runs.get(page.file.src_uri)
    if runs is None:
        blocks = _blocks(markdown)
        runs = [(b, None) for b in blocks]
    pieces, last = [], 0
    for b, r in runs:
        start, end = b["span"]
        pieces += [markdown[last:start], _render(b, r)]
        last = end
    pieces.append(markdown[last:])
    text = "".join(pieces)
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth + "generated/" + page.file.src_uri.removesuffix(".md") + "/"
    return PICTURE.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)})", text)
