"""The tenant API alone, for its OpenAPI schema."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include(module))
    for module in ("league.api.urls", "tasks.api.tenant_urls", "configuration.api.tenant_urls")
]
