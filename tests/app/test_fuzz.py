"""Every route of the OpenAPI schema with malformed input: wrong types, junk JSON, unknown ids,
huge numbers, markup, empty and random bytes. The answer is a 4xx with a message, never a
500."""

from __future__ import annotations

import itertools
import json

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from masklab.app import create_app
from tests.app.helpers import Api, make_images, rect_rle

JUNK_BODIES = [b"", b"{", b"[]", b"null", b'"x"', b"123", b'{"a": 1}', b"\xff\xfe\x00",
               json.dumps({"name": 5, "classes": "x"}).encode(),
               json.dumps({"class_id": "a", "mask": {"size": [1], "counts": 3}}).encode(),
               json.dumps({"points": [[1e308, -1e308]], "labels": [7], "box": [1, 2]}).encode(),
               json.dumps({"version": -1, "status": "<b>", "format": "../../x"}).encode(),
               json.dumps({"folder": "\x00", "coco": "/dev/zero"}).encode(),
               json.dumps({"band": 10**12, "strokes": [{"points": [[0, 0]], "width": -5}]})
               .encode(),
               json.dumps({"text": "a" * 5000, "threshold": "x"}).encode(),
               json.dumps({"direction": "forward", "frames": 10**9}).encode()]
IDS = ["1", "0", "-1", "99999999999999999999", "abc", "1.5"]


def test_no_route_answers_500_to_bad_input(tmp_path):
    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut")
    with TestClient(app, raise_server_exceptions=False) as c:
        api = Api(c)
        p = api.post("/api/projects", json={"name": "p", "classes": ["box"]})
        api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
        api.post("/api/images/1/annotations", json={"class_id": 1,
                                                     "mask": rect_rle(40, 30, 120, 90)})
        schema = c.get("/openapi.json").json()
        seen = 0
        failures = []
        for path, ops in schema["paths"].items():
            for method in ops:
                # every id with a few bodies, every body with one id
                cases = [*itertools.product(IDS, JUNK_BODIES[:3]),
                         *((IDS[k % len(IDS)], b) for k, b in enumerate(JUNK_BODIES))]
                for ident, body in cases:
                    url = path
                    for name in ("project_id", "image_id", "annotation_id"):
                        url = url.replace("{" + name + "}", ident)
                    url = url.replace("{name}", "..%2F..%2Fmasklab.db")
                    r = c.request(method.upper(), url, content=body, headers={
                        **api.h, "content-type": "application/json"})
                    seen += 1
                    if r.status_code >= 500:
                        failures.append((method, url, body[:60], r.status_code, r.text[:200]))
                    elif r.status_code >= 400:
                        assert "detail" in r.json(), (method, url, r.text)
        assert seen > 300
        assert not failures, failures[:5]
