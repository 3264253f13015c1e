#!/usr/bin/env python3
"""Checks the machine-readable contract in schemas/ and, optionally, captured samples.

    python3 schemas/check.py [SAMPLES_DIR]

1. Every *.schema.json under schemas/ is a valid JSON Schema draft 2020-12, and every
   schemas/ws/server.<type>.schema.json / client.<type>.schema.json pins `type` to <type>.
2. schemas/openapi.yaml is a valid OpenAPI 3.1 document, and every `$ref` in it leads
   somewhere (external ones to a schema file checked in step 1).
3. Every sample under SAMPLES_DIR validates against its schema. A sample file is either
   `*.json` (one JSON document) or `*.jsonl` / `*.ndjson` (one document per line, e.g.
   captured WebSocket frames). The schema is chosen by content:
     - `type` starts with "urn:linkdrop:problem:" -> Problem in openapi.yaml (error bodies)
     - `type` == "order.created"       -> events/webhook.order-created.schema.json
     - `type` == "ping"                -> ws/client.ping.schema.json
     - any other `type` T              -> ws/server.T.schema.json (unknown T fails)
     - no `type`, has `idempotency_key` -> events/order-accepted.schema.json
   A sample that matches a schema marked `"x-linkdrop-status": "planned"` passes with a
   note: the server now sends it, so the schema's status should be updated.

Needs only the standard library, jsonschema, pyyaml and openapi-spec-validator.
Exits 0 when everything passes, 1 otherwise.
"""

import json
import sys
from pathlib import Path

import jsonschema
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

SCHEMAS = Path(__file__).resolve().parent
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
PROBLEM = "openapi.yaml#/components/schemas/Problem"


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, what):
        print(f"ok    {what}")

    def note(self, what):
        print(f"note  {what}")

    def fail(self, what, why):
        self.failures += 1
        print(f"FAIL  {what}: {why}")


def schema_files():
    return sorted(p for p in SCHEMAS.rglob("*.schema.json"))


def check_json_schemas(report):
    """Loads and checks every JSON Schema; returns {path relative to schemas/: schema}."""
    loaded = {}
    for path in schema_files():
        rel = path.relative_to(SCHEMAS).as_posix()
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            report.fail(rel, f"not JSON: {e}")
            continue
        if schema.get("$schema") != DRAFT_2020_12:
            report.fail(rel, f"$schema is {schema.get('$schema')!r}, expected {DRAFT_2020_12}")
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            report.fail(rel, f"invalid draft 2020-12 schema: {e.message}")
            continue
        if rel.startswith("ws/"):
            name = path.name[: -len(".schema.json")]
            direction, _, msg_type = name.partition(".")
            pinned = schema.get("properties", {}).get("type", {}).get("const")
            if direction not in ("server", "client") or pinned != msg_type:
                report.fail(rel, f"file name says {direction} {msg_type!r}, schema pins type {pinned!r}")
                continue
        loaded[rel] = schema
        report.ok(f"{rel} is a valid draft 2020-12 schema")
    return loaded


def broken_refs(spec, base_dir, schemas, node=None, where="#"):
    """(location, reason) for every `$ref` in the OpenAPI document that leads nowhere.

    openapi-spec-validator does not follow every reference (e.g. external files under
    `webhooks`), so they are checked here: an internal `#/...` pointer must exist, an
    external one must name a schema file of schemas/ that passed its own check."""
    node = spec if node is None else node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, _, fragment = ref.partition("#")
            if target:
                rel = (base_dir / target).resolve().relative_to(SCHEMAS).as_posix()
                if rel not in schemas:
                    yield where, f"$ref {ref} is not a valid schema file of schemas/"
            elif not resolves(spec, fragment):
                yield where, f"$ref {ref} points nowhere"
        for key, value in node.items():
            step = str(key).replace("~", "~0").replace("/", "~1")
            yield from broken_refs(spec, base_dir, schemas, value, f"{where}/{step}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from broken_refs(spec, base_dir, schemas, value, f"{where}/{i}")


def resolves(doc, pointer):
    for part in pointer.lstrip("/").split("/") if pointer else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False
    return True


def check_openapi(report, schemas):
    path = SCHEMAS / "openapi.yaml"
    rel = path.name
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        report.fail(rel, f"not YAML: {e}")
        return
    if not str(spec.get("openapi", "")).startswith("3.1"):
        report.fail(rel, f"openapi is {spec.get('openapi')!r}, expected 3.1.x")
        return
    ref_errors = list(broken_refs(spec, path.parent, schemas))
    for where, why in ref_errors:
        report.fail(rel, f"{where}: {why}")
    try:
        errors = list(OpenAPIV31SpecValidator(spec, base_uri=path.as_uri()).iter_errors())
    except Exception as e:  # the validator raises, rather than reports, some problems
        report.fail(rel, f"validator stopped: {type(e).__name__}: {str(e)[:300]}")
        return
    for error in errors:
        where = "/".join(str(p) for p in getattr(error, "path", [])) or "(root)"
        report.fail(rel, f"{where}: {getattr(error, 'message', error)}")
    if not errors and not ref_errors:
        schemas[PROBLEM] = component_schema(spec, "Problem")
        operations = sum(
            1
            for item in spec.get("paths", {}).values()
            for method in item
            if method in ("get", "put", "post", "delete", "patch", "head", "options")
        )
        report.ok(f"{rel} is a valid OpenAPI 3.1 document ({operations} operations)")


def component_schema(spec, name):
    """`#/components/schemas/<name>` of the OpenAPI document as a standalone draft 2020-12
    schema (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""

    def rewrite(node):
        if isinstance(node, dict):
            return {
                k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" and isinstance(v, str) else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return {
        "$schema": DRAFT_2020_12,
        "$ref": f"#/$defs/{name}",
        "$defs": rewrite(spec.get("components", {}).get("schemas", {})),
    }


def schema_for(doc):
    """The schemas/-relative path of the schema a sample should match, or an error text."""
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    kind = doc.get("type")
    if isinstance(kind, str) and kind.startswith("urn:linkdrop:problem:"):
        return PROBLEM, None
    if kind == "order.created":
        return "events/webhook.order-created.schema.json", None
    if kind == "ping":
        return "ws/client.ping.schema.json", None
    if isinstance(kind, str):
        return f"ws/server.{kind}.schema.json", None
    if kind is None and "idempotency_key" in doc:
        return "events/order-accepted.schema.json", None
    return None, "cannot tell which schema applies (no `type`, no `idempotency_key`)"


def read_samples(path):
    """(label, document or ValueError) for each document in a sample file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield f"{path.name}:{n}", json.loads(line)
                except ValueError as e:
                    yield f"{path.name}:{n}", e
    else:
        try:
            yield path.name, json.loads(text)
        except ValueError as e:
            yield path.name, e


def check_samples(report, samples_dir, schemas):
    files = sorted(
        p for p in samples_dir.rglob("*") if p.suffix in (".json", ".jsonl", ".ndjson") and p.is_file()
    )
    if not files:
        report.fail(str(samples_dir), "no *.json, *.jsonl or *.ndjson samples")
        return
    for path in files:
        for label, doc in read_samples(path):
            if isinstance(doc, ValueError):
                report.fail(label, f"not JSON: {doc}")
                continue
            rel, why = schema_for(doc)
            if rel is None:
                report.fail(label, why)
                continue
            schema = schemas.get(rel)
            if schema is None and rel == PROBLEM:
                report.fail(label, "openapi.yaml failed its check, so its Problem schema is unavailable")
                continue
            if schema is None:
                report.fail(label, f"no schema {rel} (a message the contract does not describe)")
                continue
            validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errors:
                for e in errors:
                    where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                    report.fail(label, f"{rel}: {where}: {e.message}")
                continue
            report.ok(f"{label} matches {rel}")
            if schema.get("x-linkdrop-status") == "planned":
                report.note(f"{label}: {rel} is marked planned but was sent; update its status")


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 2
    report = Report()
    schemas = check_json_schemas(report)
    check_openapi(report, schemas)
    if len(argv) == 2:
        samples_dir = Path(argv[1])
        if not samples_dir.is_dir():
            report.fail(argv[1], "not a directory")
        else:
            check_samples(report, samples_dir, schemas)
    print(f"{report.failures} failure(s)" if report.failures else "all checks passed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
