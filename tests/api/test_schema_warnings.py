"""Both OpenAPI documents build without a single drf-spectacular warning or error.

drf-spectacular leaves out a view it cannot describe (an APIView with no serializer) and only says so on stderr:
the endpoint then silently vanishes from the document, its clients and the schemathesis run. Here any such
message fails, the way `manage.py spectacular --validate --fail-on-warn` fails for the deployment.
"""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from tests.api.openapi import URLCONFS


@pytest.mark.parametrize("site", sorted(URLCONFS))
def test_the_openapi_document_builds_with_no_warning_and_validates(site, capsys):
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(urlconf=URLCONFS[site]).get_schema(request=None, public=True)
    emitted = capsys.readouterr().err
    problems = dict(GENERATOR_STATS._warn_cache) | dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert not problems, f"drf-spectacular on the {site} API:\n{emitted}"
    validate_schema(schema)
    assert schema["paths"], "an empty document would pass the check above"
