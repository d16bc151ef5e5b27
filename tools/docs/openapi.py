"""MkDocs hook: the app's REST reference (``reference/rest.md``), generated from the
OpenAPI schema of the very app ``masklab app`` serves (made on an empty data folder), and
that schema itself (``reference/openapi.json``) for client generators; and a cosmetic fix
of the generated CLI reference."""

from __future__ import annotations

import json
import tempfile

from mkdocs.structure.files import File

METHODS = ("get", "post", "put", "patch", "delete")


def _type(schema: dict, schemas: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})" if name in schemas else name
    if "anyOf" in schema:
        return " or ".join(_type(s, schemas) for s in schema["anyOf"])
    t = schema.get("type", "any")
    if t == "array":
        return f"array of {_type(schema.get('items', {}), schemas)}"
    if "enum" in schema:
        return " / ".join(f"`{v}`" for v in schema["enum"])
    return t


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(spec: dict) -> str:
    schemas = spec.get("components", {}).get("schemas", {})
    out = ["# REST API", "",
           f"The app's HTTP interface ({spec['info']['title']} {spec['info']['version']}), "
           "generated from its OpenAPI schema when the site is built: "
           "[openapi.json](openapi.json) is the schema itself, for client generators. "
           "The browser front end uses nothing else. With `--auth`, every route but "
           "`/api/info`, `/api/session` and `/api/login` needs the session cookie that "
           "`POST /api/login` sets; errors are `{\"detail\": \"one line\"}` with the "
           "status that fits (400 bad input, 403, 404, 409 stale version, 413, 422).", ""]
    groups: dict[str, list] = {}
    for path, ops in spec["paths"].items():
        parts = path.strip("/").split("/")
        group = parts[1] if len(parts) > 1 and parts[0] == "api" else parts[0] or "/"
        for method in METHODS:
            if method in ops:
                groups.setdefault(group, []).append((path, method, ops[method]))
    for group in sorted(groups):
        out += [f"## {group}", ""]
        for path, method, op in groups[group]:
            out += [f"### `{method.upper()} {path}`", "", op.get("summary", ""), ""]
            if op.get("description"):
                out += [op["description"].replace("``", "`"), ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required | default |",
                        "|---|---|---|---|---|"]
                for p in params:
                    s = p.get("schema", {})
                    default = s.get("default", "")
                    out.append(f"| `{p['name']}` | {p['in']} | {_cell(_type(s, schemas))} | "
                               f"{'yes' if p.get('required') else ''} | "
                               f"{_cell(json.dumps(default) if default != '' else '')} |")
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out += [f"Body ({media}): {_type(content.get('schema', {}), schemas)}", ""]
    out += ["## Schemas", ""]
    for name in sorted(schemas):
        s = schemas[name]
        out += [f"### {name}", ""]
        if s.get("description"):
            out += [s["description"].replace("``", "`"), ""]
        props = s.get("properties", {})
        if props:
            req = set(s.get("required", []))
            out += ["| field | type | required | default |", "|---|---|---|---|"]
            for k, v in props.items():
                default = v.get("default", "")
                out.append(f"| `{k}` | {_cell(_type(v, schemas))} | "
                           f"{'yes' if k in req else ''} | "
                           f"{_cell(json.dumps(default) if default != '' else '')} |")
            out.append("")
    return "\n".join(out) + "\n"


def app_schema() -> dict:
    from masklab.app.server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        return create_app(tmp).openapi()


def on_files(files, config):
    spec = app_schema()
    files.append(File.generated(config, "reference/rest.md", content=render(spec)))
    files.append(File.generated(config, "reference/openapi.json",
                                content=json.dumps(spec, indent=1)))
    return files


def on_page_content(html, page, config, files):
    """mkdocs-click prints click 8.3's "no default" sentinel as a default: none shown."""
    if page.file.src_uri == "reference/cli.md":
        return html.replace("<td><code>Sentinel.UNSET</code></td>", "<td></td>")
    return html
