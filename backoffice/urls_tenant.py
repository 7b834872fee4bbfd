"""Tenant site, served on each tenant's domain over its own schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from backoffice.admin_sites import tenant_site
from tenants.api.throttling import DocumentationThrottle
from tenants.media import tenant_media

handler400 = "core.api.json_400"
handler404 = "core.api.json_404"
handler500 = "core.api.json_500"

urlpatterns = [
    path("admin/", tenant_site.urls),
    path("api/v1/", include("league.api.urls")),
    path("api/v1/", include("tasks.api.tenant_urls")),
    path("api/v1/", include("configuration.api.tenant_urls")),
    # A tenant's API document and docs are public and never metered: reading them spends no quota (an
    # anonymous reader's address has its per-minute allowance).
    path("api/schema/", SpectacularAPIView.as_view(urlconf="backoffice.urls_tenant_api",
                                                   throttle_classes=[DocumentationThrottle]), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", throttle_classes=[DocumentationThrottle]),
         name="swagger-ui"),
    path("media/<str:schema_name>/<path:path>", tenant_media, name="tenant-media"),
]
