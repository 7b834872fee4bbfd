"""Production operations: health and readiness probes, Prometheus metrics, request ids and JSON logs (issue 16)."""
