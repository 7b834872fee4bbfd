"""The operator API alone, for its OpenAPI schema."""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("tenants.api.urls"))]
