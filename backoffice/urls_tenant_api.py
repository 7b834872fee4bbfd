"""The tenant API alone, for its OpenAPI schema."""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("league.api.urls"))]
