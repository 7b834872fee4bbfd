"""The one domain exception type: a code, a message, structured detail and an HTTP status."""


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, detail=None, status: int | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.detail = detail if detail is not None else {}
        self.status = status or self.status
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.message
