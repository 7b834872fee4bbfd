"""Pagination of both APIs: the page size is api.page_size, read on every request (per tenant view).

A client may ask for another size with ?page_size=, within the bounds of the
key's JSON Schema (1..500 as shipped); anything else is a 400 in the API's
JSON error shape rather than DRF's silent fallback to the default.
"""

import re

from rest_framework.pagination import PageNumberPagination

from configuration import keys
from core.errors import DomainError

_WHOLE_NUMBER = re.compile(r"^\d{1,9}$")


class ConfiguredPageNumberPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return keys.api_page_size()
        minimum, maximum = keys.api_page_size_bounds()
        size = int(raw) if _WHOLE_NUMBER.match(raw) else None
        if size is None or not minimum <= size <= maximum:
            raise DomainError(
                f"page_size must be a whole number from {minimum} to {maximum}, not {raw[:50]!r}.",
                code="invalid", status=400,
                detail={"page_size": {"minimum": minimum, "maximum": maximum, "value": raw[:50]}},
            )
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        minimum, maximum = keys.api_page_size_bounds(shipped=True)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": minimum, "maximum": maximum})
                parameter["description"] = (f"Results per page, {minimum} to {maximum}; "
                                             "the default is the api.page_size setting.")
        return parameters
