#!/usr/bin/env python3
"""Checks objects against the CustomResourceDefinitions burnguard ships, offline, the way the
API server checks them on create: the structural schema (types, required fields, ranges,
patterns, enums) and the CEL rules (`x-kubernetes-validations`).

usage: validate-crd-objects.py CRDS.yaml OBJECTS.yaml...

Prints one JSON line per object: {"file", "kind", "name", "errors": [...]}; objects of kinds
the CRDs do not define are skipped. Run by tests/deploy_manifests.rs with the venv that
scripts/install-manifest-tools makes (jsonschema and cel-python).
"""
import json
import sys

import celpy
import jsonschema
import yaml


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def to_json_schema(node):
    """An OpenAPI v3 structural schema as a JSON Schema draft 4 (which reads exclusiveMinimum
    as a boolean, as OpenAPI v3.0 does): `nullable` becomes a null type, extensions go."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties",):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        out = {k: v for k, v in out.items() if k == "description"}
    return out


CEL = celpy.Environment()


def cel_errors(schema, value, path):
    """Every rule on the way down that does not hold, as `path: message`."""
    errors = []
    if value is None:
        return errors
    for rule in schema.get("x-kubernetes-validations", []):
        program = CEL.program(CEL.compile(rule["rule"]))
        try:
            ok = bool(program.evaluate({"self": celpy.json_to_cel(value)}))
        except Exception as e:  # an evaluation error is a refusal too
            ok = False
            rule = dict(rule, message=f"{rule.get('message', rule['rule'])} ({e})")
        if not ok:
            errors.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += cel_errors(sub, value[name], f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def main():
    crds = {}
    for crd in load_all(sys.argv[1]):
        group = crd["spec"]["group"]
        for version in crd["spec"]["versions"]:
            key = (f"{group}/{version['name']}", crd["spec"]["names"]["kind"])
            crds[key] = version["schema"]["openAPIV3Schema"]
    for path in sys.argv[2:]:
        for obj in load_all(path):
            schema = crds.get((obj.get("apiVersion"), obj.get("kind")))
            if schema is None:
                continue
            validator = jsonschema.Draft4Validator(to_json_schema(schema))
            errors = [
                f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in validator.iter_errors(obj)
            ]
            errors += cel_errors(schema, obj, "")
            print(json.dumps({
                "file": path,
                "kind": obj.get("kind"),
                "name": (obj.get("metadata") or {}).get("name"),
                "errors": errors,
            }))


if __name__ == "__main__":
    main()
