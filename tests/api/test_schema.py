"""The committed OpenAPI schema (frontend_static/openapi.yml) is the server's: the frontend's types are generated from
it (src/api-schema.ts, at `npm run build`), so a response that changes on the server must change the schema, and the
frontend build then type-checks the pages against it (tests/browser/test_build_stamp.py holds the bundle to it)."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parents[2] / "frontend_static" / "openapi.yml"


def test_the_committed_schema_is_the_servers(tmp_path):
    call_command("spectacular", "--file", str(tmp_path / "openapi.yml"))
    current = yaml.safe_load((tmp_path / "openapi.yml").read_text())
    assert current == yaml.safe_load(COMMITTED.read_text()), \
        "the API changed: run `make schema` (regenerates frontend_static/openapi.yml and rebuilds the bundle)"


def test_every_dashboard_response_is_typed():
    schema = yaml.safe_load(COMMITTED.read_text())
    untyped = []
    for path, operations in schema["paths"].items():
        if not path.startswith(("/api/dashboard/", "/api/rounds/")):
            continue
        for method, operation in operations.items():
            for code, response in operation.get("responses", {}).items():
                for body in response.get("content", {}).values():
                    body_schema = body.get("schema", {})
                    if "$ref" not in body_schema and body_schema.get("type") == "object" \
                            and "properties" not in body_schema:
                        untyped.append(f"{method.upper()} {path} {code}")
    assert untyped == []
