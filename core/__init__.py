"""The shared kernel: what every app uses and nothing app-specific.

errors (DomainError), api (the JSON error shape, its handler, the bounded JSON parser, the OpenAPI error
component), db (raw-SQL helpers), locks (the one advisory-lock key table), masking (secrets in logs and
views), permissions (OperatorOnly), charts (server-side SVG), admin (the lazily resolved admin sites and
ServiceErrorFormMixin). It imports Django and libraries only, never an app and never backoffice.
"""
