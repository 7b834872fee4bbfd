"""Operator API of the services app (public host only; tenant sites do not include it)."""

from django.urls import path

from registry.api import views

app_name = "services_api"
urlpatterns = [
    path("services/", views.ServiceListView.as_view(), name="service-list"),
    path("services/etcd-mirror/", views.EtcdMirrorView.as_view(), name="etcd-mirror"),
    path("services/register", views.RegisterView.as_view(), name="register"),
    path("services/tokens", views.TokenCreateView.as_view(), name="token-create"),
    path("services/heartbeat/<str:service_id>", views.HeartbeatView.as_view(), name="heartbeat"),
    path("services/deregister/<str:service_id>", views.DeregisterView.as_view(), name="deregister"),
    path("services/maintenance/<str:service_id>", views.MaintenanceView.as_view(), name="maintenance"),
    path("services/<str:name>/instances", views.InstanceListView.as_view(), name="instances"),
    path("services/<str:name>/next", views.NextInstanceView.as_view(), name="next"),
]
