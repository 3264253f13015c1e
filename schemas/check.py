#!/usr/bin/env python3
"""Checks the machine-readable contract in schemas/ and, optionally, captured samples.

    python3 schemas/check.py [--strict] [SAMPLES_DIR]

1. Every *.schema.json under schemas/ is a valid JSON Schema draft 2020-12, and every
   schemas/ws/server.<type>.schema.json / client.<type>.schema.json pins `type` to <type>.
2. schemas/openapi.yaml is a valid OpenAPI 3.1 document, and every `$ref` in it leads
   somewhere (external ones to a schema file checked in step 1).
3. Every sample under SAMPLES_DIR validates against its schema. A sample file is either
   `*.json` (one JSON document) or `*.jsonl` / `*.ndjson` (one document per line, e.g.
   captured WebSocket frames). The file name says what the sample is (see schemas/README.md):
     http.<operationId>.<status>[.<label>].json
         an HTTP response body -> the OpenAPI response schema of that operation and status
         (application/json, or application/problem+json for a problem body)
     http.problem.<status>[.<label>].json
         an error of no particular operation (unknown path, wrong method) -> Problem
     ws.server.<label>.json[l]  frames the server sent   -> ws/server.<type>.schema.json
     ws.client.<label>.json[l]  frames a client sent     -> ws/client.<type>.schema.json
     webhook.<event type>[.<label>].json
         a merchant webhook body -> the request body schema of `webhooks.<event type>` in
         openapi.yaml; its `type` must be <event type>
     kafka.<label>.json[l]      an order event on <ns>.orders -> events/order-event.schema.json
   Any other name: the schema is chosen by content, as a fallback:
     - `type` starts with "urn:linkdrop:problem:" -> Problem in openapi.yaml (error bodies)
     - `type` is a merchant event type            -> that webhook's body schema
     - `type` == "ping"                           -> ws/client.ping.schema.json
     - any other `type` T                         -> ws/server.T.schema.json (unknown T fails)
     - no `type`, has `kind`                      -> events/order-event.schema.json
   Every problem body must also be self-consistent: `type` is urn:linkdrop:problem:<code>,
   `status` is the status its code is sent with (`x-linkdrop-http-status` of ProblemCode),
   and for an http.* sample the status of its file name.
   A sample that uses something marked `"x-linkdrop-status": "planned"` (an operation, a
   response, a schema, a member, a problem code) passes with a note: the server now sends
   it, so the mark should go. With --strict such a note is a failure.

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
ORDER_EVENT = "events/order-event.schema.json"
PROBLEM_URN = "urn:linkdrop:problem:"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class Report:
    def __init__(self, strict=False):
        self.failures = 0
        self.strict = strict

    def ok(self, what):
        print(f"ok    {what}")

    def note(self, what):
        if self.strict:
            self.fail(what, "uses something marked planned (--strict)")
        else:
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
            elif pointer(spec, fragment) is MISSING:
                yield where, f"$ref {ref} points nowhere"
        for key, value in node.items():
            step = str(key).replace("~", "~0").replace("/", "~1")
            yield from broken_refs(spec, base_dir, schemas, value, f"{where}/{step}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from broken_refs(spec, base_dir, schemas, value, f"{where}/{i}")


MISSING = object()


def pointer(doc, fragment):
    """The node at JSON pointer `fragment` (e.g. `/components/schemas/Drop`), or MISSING."""
    for part in fragment.lstrip("/").split("/") if fragment else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return MISSING
    return doc


def check_openapi(report, schemas):
    """Checks openapi.yaml; returns the document when it passed, else None."""
    path = SCHEMAS / "openapi.yaml"
    rel = path.name
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        report.fail(rel, f"not YAML: {e}")
        return None
    if not str(spec.get("openapi", "")).startswith("3.1"):
        report.fail(rel, f"openapi is {spec.get('openapi')!r}, expected 3.1.x")
        return None
    ref_errors = list(broken_refs(spec, path.parent, schemas))
    for where, why in ref_errors:
        report.fail(rel, f"{where}: {why}")
    try:
        errors = list(OpenAPIV31SpecValidator(spec, base_uri=path.as_uri()).iter_errors())
    except Exception as e:  # the validator raises, rather than reports, some problems
        report.fail(rel, f"validator stopped: {type(e).__name__}: {str(e)[:300]}")
        return None
    for error in errors:
        where = "/".join(str(p) for p in getattr(error, "path", [])) or "(root)"
        report.fail(rel, f"{where}: {getattr(error, 'message', error)}")
    code_errors = list(problem_code_errors(spec))
    for why in code_errors:
        report.fail(rel, why)
    if errors or ref_errors or code_errors:
        return None
    schemas[PROBLEM] = standalone(spec, {"$ref": "#/components/schemas/Problem"})
    report.ok(f"{rel} is a valid OpenAPI 3.1 document ({len(list(operations(spec)))} operations)")
    return spec


def problem_code_errors(spec):
    """ProblemCode's `x-linkdrop-http-status` must give a status for exactly its codes."""
    code = spec.get("components", {}).get("schemas", {}).get("ProblemCode", {})
    codes = set(code.get("enum", []))
    statuses = code.get("x-linkdrop-http-status", {})
    if set(statuses) != codes:
        yield (
            "ProblemCode: x-linkdrop-http-status and enum differ: "
            f"{sorted(set(statuses) ^ codes)}"
        )


def operations(spec):
    """(operationId, operation, where) of every operation, webhooks included."""
    for section in ("paths", "webhooks"):
        for name, item in (spec.get(section) or {}).items():
            for method, operation in item.items():
                if method in HTTP_METHODS and isinstance(operation, dict):
                    yield operation.get("operationId"), operation, f"{section} {method.upper()} {name}"


def standalone(spec, schema):
    """An OpenAPI schema object as a standalone draft 2020-12 schema (OpenAPI 3.1 schemas
    are JSON Schema 2020-12): `#/components/schemas/X` becomes `#/$defs/X`, and the
    components travel along as `$defs`."""

    def rewrite(node):
        if isinstance(node, dict):
            return {
                k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" and isinstance(v, str) else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    out = {"$schema": DRAFT_2020_12, "$defs": rewrite(spec.get("components", {}).get("schemas", {}))}
    out.update(rewrite(schema))
    return out


def deref(spec, node):
    """Follows internal `$ref`s of OpenAPI objects (responses, request bodies)."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        node = pointer(spec, node["$ref"][1:])
        seen += 1
        if node is MISSING or seen > 20:
            return MISSING
    return node


def is_planned(node):
    return isinstance(node, dict) and node.get("x-linkdrop-status") == "planned"


def is_problem(doc):
    return isinstance(doc, dict) and isinstance(doc.get("type"), str) and doc["type"].startswith(PROBLEM_URN)


class Target:
    """What a sample must match: a schema, and where it came from."""

    def __init__(self, label, schema, planned=(), status=None):
        self.label = label
        self.schema = schema
        self.planned = list(planned)  # what was marked planned on the way to the schema
        self.status = status  # the HTTP status of an http.* sample


class Contract:
    def __init__(self, schemas, spec):
        self.schemas = schemas
        self.spec = spec
        self.by_operation = {op_id: (op, where) for op_id, op, where in operations(spec)} if spec else {}
        code = (spec or {}).get("components", {}).get("schemas", {}).get("ProblemCode", {})
        self.code_status = code.get("x-linkdrop-http-status", {})
        problem = (spec or {}).get("components", {}).get("schemas", {}).get("Problem", {})
        self.planned_codes = set(problem.get("x-linkdrop-planned-codes", []))

    def need_spec(self):
        if self.spec is None:
            raise LookupError("openapi.yaml failed its check, so its schemas are unavailable")

    def problem(self, status=None):
        self.need_spec()
        return Target(PROBLEM, self.schemas[PROBLEM], status=status)

    def file_schema(self, rel):
        schema = self.schemas.get(rel)
        if schema is None:
            raise LookupError(f"no schema {rel} (a message the contract does not describe)")
        return Target(rel, schema)

    def http(self, op_id, status, doc):
        """The response schema of operation `op_id` for `status`."""
        if op_id == "problem":
            if not is_problem(doc):
                raise LookupError("http.problem.* must be a problem body")
            return self.problem(status)
        self.need_spec()
        if op_id not in self.by_operation:
            raise LookupError(f"openapi.yaml has no operation {op_id!r}")
        operation, where = self.by_operation[op_id]
        responses = operation.get("responses", {})
        key = next((k for k in (status, f"{status[0]}XX", "default") if k in responses), None)
        if key is None:
            raise LookupError(f"{where} ({op_id}) documents no {status} response")
        response = deref(self.spec, responses[key])
        content = response.get("content") or {} if response is not MISSING else {}
        kinds = [ct for ct in content if ct.split(";")[0].strip().endswith("json")]
        if not kinds:
            raise LookupError(f"{where} ({op_id}) {key} documents no JSON body")
        wanted = "application/problem+json" if is_problem(doc) else "application/json"
        kind = wanted if wanted in kinds else kinds[0]
        if kind != wanted and len(kinds) > 1:
            raise LookupError(f"{where} ({op_id}) {key} documents no {wanted} body")
        planned = [f"{op_id}"] if is_planned(operation) else []
        planned += [f"{op_id} {key}"] if is_planned(response) or is_planned(responses[key]) else []
        schema = content[kind].get("schema", {})
        return Target(f"openapi.yaml {op_id} {key} {kind}", standalone(self.spec, schema), planned, status)

    def webhook(self, event_type):
        self.need_spec()
        item = (self.spec.get("webhooks") or {}).get(event_type)
        operation = (item or {}).get("post")
        if not operation:
            raise LookupError(f"openapi.yaml has no webhook {event_type!r}")
        body = deref(self.spec, operation.get("requestBody", {}))
        schema = ((body or {}).get("content", {}).get("application/json", {})).get("schema")
        if schema is None:
            raise LookupError(f"webhook {event_type} has no application/json body schema")
        planned = [f"webhook {event_type}"] if is_planned(operation) else []
        ref = schema.get("$ref", "")
        if ref and not ref.startswith("#"):
            rel = (SCHEMAS / ref.partition("#")[0]).resolve().relative_to(SCHEMAS).as_posix()
            target = self.file_schema(rel)
            target.planned += planned
            return target
        return Target(f"openapi.yaml webhook {event_type}", standalone(self.spec, schema), planned)

    def ws(self, direction, doc):
        kind = doc.get("type") if isinstance(doc, dict) else None
        if not isinstance(kind, str):
            raise LookupError("a WebSocket frame without a string `type`")
        return self.file_schema(f"ws/{direction}.{kind}.schema.json")

    def by_content(self, doc):
        kind = doc.get("type") if isinstance(doc, dict) else None
        if is_problem(doc):
            return self.problem()
        if isinstance(kind, str) and self.spec and kind in (self.spec.get("webhooks") or {}):
            return self.webhook(kind)
        if kind == "ping":
            return self.file_schema("ws/client.ping.schema.json")
        if isinstance(kind, str):
            return self.file_schema(f"ws/server.{kind}.schema.json")
        if kind is None and isinstance(doc, dict) and "kind" in doc:
            return self.file_schema(ORDER_EVENT)
        raise LookupError("cannot tell which schema applies (name it as schemas/README.md says)")

    def target(self, name, doc):
        """The Target of sample `doc` from a file called `name` (suffix removed)."""
        if not isinstance(doc, dict):
            raise LookupError("not a JSON object")
        parts = name.split(".")
        head = parts[0]
        if head == "http":
            if len(parts) < 3 or not (parts[2].isdigit() and len(parts[2]) == 3):
                raise LookupError("expected http.<operationId>.<status>[.<label>]")
            return self.http(parts[1], parts[2], doc)
        if head == "ws":
            if len(parts) < 2 or parts[1] not in ("server", "client"):
                raise LookupError("expected ws.server.<label> or ws.client.<label>")
            return self.ws(parts[1], doc)
        if head == "webhook":
            # Event types contain a dot: webhook.order.created[.<label>]
            if len(parts) < 3:
                raise LookupError("expected webhook.<event type>[.<label>]")
            event_type = f"{parts[1]}.{parts[2]}"
            if doc.get("type") != event_type:
                raise LookupError(f"the file name says {event_type}, the body's type is {doc.get('type')!r}")
            return self.webhook(event_type)
        if head == "kafka":
            return self.file_schema(ORDER_EVENT)
        return self.by_content(doc)

    def problem_errors(self, doc, status):
        """Consistency of a problem body with its code and HTTP status."""
        code = doc.get("code")
        if doc.get("type") != f"{PROBLEM_URN}{code}":
            yield f"type {doc.get('type')!r} does not match code {code!r}"
        expected = self.code_status.get(code)
        if expected is not None and doc.get("status") != expected:
            yield f"code {code!r} is sent with status {expected}, the body says {doc.get('status')!r}"
        if status is not None and str(doc.get("status")) != status:
            yield f"the body says status {doc.get('status')!r}, the response was {status}"


def planned_members(root, schema, doc, where=""):
    """What the document uses that `schema` marks planned: (location, what) pairs."""
    seen = set()

    def resolve(node):
        for _ in range(20):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#")):
                return node
            node = pointer(root, node["$ref"][1:])
        return node

    def walk(node, value, at):
        node = resolve(node)
        if not isinstance(node, dict) or node is MISSING:
            return
        if is_planned(node) and at not in seen:
            seen.add(at)
            yield at or "(root)", node.get("title") or node.get("description", "")[:60]
        for sub in node.get("allOf", []):
            yield from walk(sub, value, at)
        for key in ("oneOf", "anyOf"):
            for sub in node.get(key, []):
                if Draft202012Validator({"$defs": root.get("$defs", {}), **resolve(sub)}).is_valid(value):
                    yield from walk(sub, value, at)
        if isinstance(value, dict):
            for name, sub in (node.get("properties") or {}).items():
                if name in value:
                    yield from walk(sub, value[name], f"{at}/{name}")
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                yield from walk(node["items"], item, f"{at}/{i}")

    yield from walk(schema, doc, where)


def describe(error):
    """Where and why a document fails; for oneOf / anyOf, also the closest alternative."""
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    if not error.context:
        return f"{where}: {error.message}"
    # The alternative with the fewest errors is most likely the one meant.
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
    closest = min(branches.values(), key=len)
    return (
        f"{where}: matches none of its `{error.validator}` alternatives "
        f"(closest: {'; '.join(describe(e) for e in closest)})"
    )


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


def check_samples(report, samples_dir, contract):
    files = sorted(
        p for p in samples_dir.rglob("*") if p.suffix in (".json", ".jsonl", ".ndjson") and p.is_file()
    )
    if not files:
        report.fail(str(samples_dir), "no *.json, *.jsonl or *.ndjson samples")
        return
    for path in files:
        name = path.name[: -len(path.suffix)]
        for label, doc in read_samples(path):
            if isinstance(doc, ValueError):
                report.fail(label, f"not JSON: {doc}")
                continue
            try:
                target = contract.target(name, doc)
            except LookupError as e:
                report.fail(label, str(e))
                continue
            validator = Draft202012Validator(target.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            problems = list(contract.problem_errors(doc, target.status)) if is_problem(doc) else []
            for e in errors:
                report.fail(label, f"{target.label}: {describe(e)}")
            for why in problems:
                report.fail(label, f"{target.label}: {why}")
            if errors or problems:
                continue
            report.ok(f"{label} matches {target.label}")
            planned = list(target.planned)
            planned += [f"{at} ({what})" for at, what in planned_members(target.schema, target.schema, doc)]
            if is_problem(doc) and doc.get("code") in contract.planned_codes:
                planned.append(f"problem code {doc['code']}")
            for what in planned:
                report.note(f"{label}: {what} is marked planned but was sent; update its status")


def main(argv):
    args = argv[1:]
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    if len(args) > 1 or any(a in ("-h", "--help") or a.startswith("-") for a in args):
        print(__doc__.strip())
        return 2
    report = Report(strict)
    schemas = check_json_schemas(report)
    spec = check_openapi(report, schemas)
    if args:
        samples_dir = Path(args[0])
        if not samples_dir.is_dir():
            report.fail(args[0], "not a directory")
        else:
            check_samples(report, samples_dir, Contract(schemas, spec))
    print(f"{report.failures} failure(s)" if report.failures else "all checks passed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
