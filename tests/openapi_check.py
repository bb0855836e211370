"""Checks answers against the OpenAPI document: the status is documented for the path and
method, and the JSON body validates (Draft 2020-12, the document's components)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jsonschema import Draft202012Validator

from chalicelib import apidoc

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Answer:
    method: str
    path: str  # as requested, query string included
    status: int
    headers: dict
    body: object  # the parsed JSON body, or None

    def __str__(self):
        return f"{self.method} {self.path} -> {self.status} {str(self.body)[:200]}"


def _template_pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def _path_item(path: str) -> tuple[str | None, dict]:
    paths = apidoc.document()["paths"]
    path = path.split("?", 1)[0]
    if len(path) > 1:
        path = path.rstrip("/")  # API Gateway and chalice serve /sendsms/ as /sendsms
    if path in paths:  # a literal path wins over a template (/messages/send, /messages/{id})
        return path, paths[path]
    for template, item in paths.items():
        if _template_pattern(template).match(path):
            return template, item
    return None, {}


def _resolve(obj: dict) -> dict:
    while "$ref" in obj:
        node = apidoc.document()
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def _documented_response(answer: Answer) -> dict | None:
    """The response object the document gives for this answer; None when there is none."""
    components = apidoc.document()["components"]["responses"]
    template, item = _path_item(answer.path)
    if template is None:  # the catch-all answers every unknown path
        return components["NotFound"] if answer.status == 404 else None
    operation = item.get(answer.method.lower())
    if operation is None:
        return components["MethodNotAllowed"] if answer.status == 405 else None
    response = operation["responses"].get(str(answer.status))
    return _resolve(response) if response else None


def violations(answer: Answer) -> list[str]:
    """What is wrong with ``answer`` according to the document (empty: it conforms)."""
    response = _documented_response(answer)
    if response is None:
        return [f"{answer}: status {answer.status} is not documented"]
    problems = [
        f"{answer}: header {name} is missing"
        for name, header in response.get("headers", {}).items()
        if _resolve(header).get("required") and name not in answer.headers
    ]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None or answer.body is None:
        return problems
    validator = Draft202012Validator({**schema, "components": apidoc.document()["components"]})
    return problems + [
        f"{answer}: {error.json_path}: {error.message}"
        for error in validator.iter_errors(answer.body)
    ]
