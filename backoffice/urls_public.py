"""Operator site, served on the public schema at the base domain."""

from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAdminUser

from backoffice.admin_sites import operator_site
from ops.metrics import metrics_view
from tenants.media import tenant_media

handler400 = "core.api.json_400"
handler404 = "core.api.json_404"
handler500 = "core.api.json_500"

urlpatterns = [
    path("admin/", operator_site.urls),
    path("api/v1/", include("tenants.api.urls")),
    path("api/v1/", include("tasks.api.urls")),
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("schemas.api.urls")),
    path("api/v1/", include("configuration.api.urls")),
    # The operator's API document and docs are for operators only (anonymous: 401, or the login page).
    path("api/schema/", SpectacularAPIView.as_view(urlconf="backoffice.urls_public_api",
                                                   permission_classes=[IsAdminUser]), name="schema"),
    path("api/docs/", staff_member_required(SpectacularSwaggerSplitView.as_view(url_name="schema"),
                                            login_url="operator_admin:login"), name="swagger-ui"),
    path("media/<str:schema_name>/<path:path>", tenant_media, name="tenant-media"),
    # Prometheus: an operator's session (the operator admin's rule) or METRICS_TOKEN (ops/metrics.py).
    path("metrics", metrics_view, {"operator_check": operator_site.has_permission}, name="metrics"),
]
