"""The documentation's machinery (tools/docs): every example runs, a failing one fails the
build, blocks not run must say why and still parse; the README stays a landing page. The
site itself is built by `make docs` (CI)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "docs"))

mkdocs = pytest.importorskip("mkdocs")


def _session(tmp_path, blocks):
    (tmp_path / "b.json").write_text(json.dumps(blocks))
    p = subprocess.run([sys.executable, str(ROOT / "tools/docs/docs_session.py"), "b.json",
                        "o.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return p.returncode, json.loads((tmp_path / "o.json").read_text())


def test_blocks_share_a_session_and_the_first_failure_stops_it(tmp_path):
    rc, out = _session(tmp_path, [
        {"lang": "python", "code": "x = 20\nprint(x + 1)", "name": "p.md:1", "timeout": 60},
        {"lang": "console", "code": "$ echo hi > f.txt\n$ cat f.txt\n$ python -c 'print(2)'",
         "name": "p.md:5", "timeout": 60},
        {"lang": "python", "code": "print(x)\nraise ValueError('boom')", "name": "p.md:9",
         "timeout": 60},
        {"lang": "python", "code": "print('never')", "name": "p.md:12", "timeout": 60}])
    assert rc == 1 and len(out) == 3
    assert out[0] == {**out[0], "ok": True, "output": "21\n"}
    assert out[1]["ok"] and out[1]["output"] == "$ echo hi > f.txt\n$ cat f.txt\nhi\n" \
        "$ python -c 'print(2)'\n2"
    assert not out[2]["ok"] and "ValueError: boom" in out[2]["output"] \
        and out[2]["output"].startswith("20\n")


def test_console_fails_option_needs_the_last_command_to_fail(tmp_path):
    rc, out = _session(tmp_path, [{"lang": "console", "code": "$ true\n$ ls nothing-here",
                                   "name": "p", "timeout": 60, "fails": True}])
    assert rc == 0 and "nothing-here" in out[0]["output"] and "(exit status 2)" in out[0][
        "output"]
    rc, out = _session(tmp_path, [{"lang": "console", "code": "$ false\n$ true",
                                   "name": "p", "timeout": 60, "fails": True}])
    assert rc == 1  # an earlier command failed
    rc, out = _session(tmp_path, [{"lang": "console", "code": "$ true", "name": "p",
                                   "timeout": 60, "fails": True}])
    assert rc == 1 and "expected this command to fail" in out[0]["output"]


def test_blocks_not_run_must_say_why_and_still_parse():
    import examples
    from mkdocs.exceptions import PluginError

    text = ('```python\nprint(1)\n```\n\n```bash norun="needs weights"\n'
            "masklab prompt photo.jpg --box 1,2,3,4 \\\n    --out sel/\n```\n")
    blocks = examples._blocks(text)
    assert [(b["lang"], b["line"]) for b in blocks] == [("python", 1), ("bash", 5)]
    examples._check_not_run("p.md", blocks[1])  # the file need not exist; the options must
    for bad, why in (('```bash\nmasklab demo\n```\n', "needs norun"),
                     ('```bash norun="x"\nmasklab segmnt semantic a --out b\n```\n',
                      "no command 'segmnt'"),
                     ('```bash norun="x"\nmasklab prompt a.jpg --bx 1,2,3,4 --out s\n```\n',
                      "No such option"),
                     ('```python norun="x"\nprint(\n```\n', "never closed")):
        with pytest.raises(PluginError, match=why):
            examples._check_not_run("p.md", examples._blocks(bad)[0])


def test_nav_pages_exist_and_readme_is_a_landing_page():
    import yaml

    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def pages(nav):
        for item in nav:
            for v in item.values():
                yield from pages(v) if isinstance(v, list) else [v]

    generated = {"reference/rest.md"}  # made from the app's OpenAPI schema at build time
    missing = [p for p in pages(cfg["nav"]) if p not in generated
               and not (ROOT / "docs" / p).is_file()]
    assert not missing
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 150
    assert readme[:6] == ["# masklab", "", "```bash",
                          "make app    # sets up .venv if needed, then starts the annotation "
                          "app on a bundled sample project",
                          "make test   # sets up .venv if needed, then runs the whole test "
                          "suite", "```"]
