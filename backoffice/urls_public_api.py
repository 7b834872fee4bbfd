"""The operator API alone, for its OpenAPI schema."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include(module))
    for module in ("tenants.api.urls", "tasks.api.urls", "registry.api.urls", "schemas.api.urls",
                   "configuration.api.urls")
]
