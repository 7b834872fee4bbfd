"""A test-only check kind, to prove that a new kind is one module plus the line that loads it.

`{"type": "file", "path": "/run/ready"}` passes while the file exists. Everything the registry does with a
kind (spec validation, the API's request fields, the sweep's probe, Consul, the admin) comes from here.
"""

from pathlib import Path

from registry import kinds
from registry.inputs import text
from registry.status import Status


@kinds.register
class FileKind(kinds.CheckKind):
    name = "file"
    label = "File exists"
    spec_fields = {"path": kinds.TEXT}

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        return {"params": {"path": text(spec.get("path"), field_name="path")}}

    def spec_from_check(self, check) -> dict:
        return {"path": (check.params or {}).get("path", "")}

    def clean(self, check) -> dict[str, str]:
        path = (check.params or {}).get("path", "")
        return {} if path.startswith("/") else {"params": "A file check needs an absolute path."}

    def target(self, check) -> str:
        return f"file {check.params.get('path')}"

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        path = Path(check["params"]["path"])
        return (Status.PASSING, f"{path} exists") if path.exists() else (Status.CRITICAL, f"{path} is missing")
