"""HTTP checks: GET a URL; 2xx (or the expected status) passes, 429 warns, anything else is critical."""

from registry.inputs import text, whole_number
from registry.kinds.base import INTEGER, TEXT, CheckKind, register
from registry.status import Status


def http_status(code: int, expected: int | None) -> str:
    if expected:
        return Status.PASSING if code == expected else Status.CRITICAL
    if 200 <= code < 300:
        return Status.PASSING
    # Consul's rule: 429 Too Many Requests is a warning, anything else critical.
    return Status.WARNING if code == 429 else Status.CRITICAL


@register
class HTTPKind(CheckKind):
    name = "http"
    order = 1
    label = "HTTP"
    spec_fields = {"url": TEXT, "http_url": TEXT, "expected_status": INTEGER, "http_expected_status": INTEGER}

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        return {
            "http_url": text(spec.get("url") or spec.get("http_url"), field_name="url"),
            "http_expected_status": whole_number(spec.get("expected_status") or spec.get("http_expected_status"),
                                                 field_name="expected_status"),
        }

    def spec_from_check(self, check) -> dict:
        return {"url": check.http_url, "expected_status": check.http_expected_status}

    def clean(self, check) -> dict[str, str]:
        return {} if check.http_url else {"http_url": "An HTTP check needs a URL."}

    def target(self, check) -> str:
        return check.http_url

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        response = await http.get(check["http_url"], timeout=check["timeout"])
        return (http_status(response.status_code, check["http_expected_status"]),
                f"HTTP GET {check['http_url']}: {response.status_code} {response.reason_phrase}")

    def consul_definition(self, check) -> dict:
        return {"HTTP": check.http_url, "Interval": f"{check.interval:g}s", "Timeout": f"{check.timeout:g}s"}
