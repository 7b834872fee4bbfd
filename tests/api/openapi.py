"""Both OpenAPI documents, built the way /api/schema/ builds them, and what they document."""

from __future__ import annotations

import functools
import re

from drf_spectacular.generators import SchemaGenerator

URLCONFS = {"operator": "backoffice.urls_public_api", "tenant": "backoffice.urls_tenant_api"}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
OPERATION_METHODS = ("get", "put", "post", "delete", "patch")


@functools.cache
def openapi_document(site: str) -> dict:
    return SchemaGenerator(urlconf=URLCONFS[site]).get_schema(request=None, public=True)


def documented_methods(site: str) -> dict[str, set[str]]:
    """{path template: {documented methods}} of one site's document."""
    return {
        path: {method for method in item if method in HTTP_METHODS}
        for path, item in openapi_document(site)["paths"].items()
    }


def fill_path(template: str, values: dict[str, str]) -> str:
    """The template with each {parameter} replaced by values[parameter] (a KeyError names a new parameter)."""
    return re.sub(r"{(\w+)}", lambda match: str(values[match[1]]), template)
