"""Operator and tenant configuration API: thin callers of the facade, selectors and services."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from configuration import keys, layers, selectors, services
from configuration.api import serializers
from configuration.conf import PUBLIC, config
from core.errors import DomainError
from tenants.models import Tenant


def _scope_param(request) -> str:
    """?tenant=<schema> for a tenant's view, the operator view otherwise; an unknown tenant is a 404."""
    schema = request.query_params.get("tenant") or PUBLIC
    if schema != PUBLIC and not Tenant.objects.filter(schema_name=schema).exists():
        raise DomainError(f"No tenant {schema!r}.", code="not_found", status=404, detail={"tenant": schema})
    return schema


def _actor(request) -> str:
    tenant = getattr(request, "tenant", None)
    return services.actor(request.user, schema_name=tenant.schema_name if tenant is not None else PUBLIC)


class EffectiveConfigView(APIView):
    """The effective configuration of a view, each key with its winning layer; secrets masked."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(parameters=[OpenApiParameter("tenant", str, description="Schema name; operator view if empty")],
                   responses=serializers.EffectiveConfigSerializer)
    def get(self, request):
        scope = _scope_param(request)
        return Response({
            "tenant": None if scope == PUBLIC else scope,
            "environment": layers.current_environment(),
            "keys": config.effective(tenant=scope, masked=True),
            "errors": config.validate(tenant=scope),
        })


class KeyView(APIView):
    """One key: effective value, winning layer and every layer's value; secrets masked."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(parameters=[OpenApiParameter("tenant", str, description="Schema name; operator view if empty")],
                   responses=serializers.KeySerializer)
    def get(self, request, key):
        scope = _scope_param(request)
        explained = config.explain(key, tenant=scope, masked=True)
        if not explained["exists"]:
            raise DomainError(f"No configuration key {key!r}.", code="not_found", status=404, detail={"key": key})
        return Response(explained)


class EntryListView(generics.ListAPIView):
    """Entries of the database and tenant layers; POST writes one (validated, recorded, reloaded everywhere)."""

    permission_classes = [permissions.IsAdminUser]
    serializer_class = serializers.EntrySerializer

    def get_queryset(self):
        schema = self.request.query_params.get("tenant")
        if schema == PUBLIC:
            return selectors.entry_list(operator_layer_only=True)
        if schema:
            return selectors.entry_list(tenant=get_object_or_404(Tenant, schema_name=schema))
        return selectors.entry_list()

    @extend_schema(request=serializers.EntryWriteSerializer, responses=serializers.EntrySerializer)
    def post(self, request):
        data = serializers.EntryWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        existed = selectors.entry_exists(key=data.validated_data["key"],
                                         schema_name=data.validated_data.get("tenant") or None)
        entry = services.entry_set(
            key=data.validated_data["key"], value=data.validated_data["value"],
            tenant=data.validated_data.get("tenant") or None, secret=data.validated_data.get("secret"),
            changed_by=_actor(request), source="api",
        )
        return Response(serializers.EntrySerializer(entry).data,
                        status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)


class EntryDetailView(generics.RetrieveDestroyAPIView):
    permission_classes = [permissions.IsAdminUser]
    serializer_class = serializers.EntrySerializer

    def get_queryset(self):
        return selectors.entry_list()

    def perform_destroy(self, instance):
        services.entry_delete(key=instance.key, tenant=instance.tenant, changed_by=_actor(self.request), source="api")


class ChangeListView(generics.ListAPIView):
    """History, newest first; ?key= narrows it."""

    permission_classes = [permissions.IsAdminUser]
    serializer_class = serializers.ChangeSerializer

    def get_queryset(self):
        return selectors.change_list(key=self.request.query_params.get("key") or None)


class RollbackView(APIView):
    """Restore the entry as it was at this change's version."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses=PolymorphicProxySerializer(
        component_name="RollbackResult", resource_type_field_name=None,
        serializers=[serializers.EntrySerializer, serializers.RollbackDeletedSerializer],
    ))
    def post(self, request, pk):
        get_object_or_404(selectors.change_list(), pk=pk)
        entry = services.entry_rollback(change_id=pk, changed_by=_actor(request), source="api")
        return Response(serializers.EntrySerializer(entry).data if entry is not None else {"deleted": True})


def _experiments() -> dict:
    return config.get("experiments", default={}, tenant=PUBLIC) or {}


def _experiment(name: str) -> dict:
    found = selectors.experiment_summaries(specs=_experiments(), name=name)[0]
    if not found["defined"] and not found["exposures"]:
        raise DomainError(f"No experiment {name!r}.", code="not_found", status=404, detail={"experiment": name})
    return found


class ExperimentListView(APIView):
    """Every experiment with its variants' weights and the exposures counted so far (the split)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses=serializers.ExperimentSerializer(many=True))
    def get(self, request):
        return Response(selectors.experiment_summaries(specs=_experiments()))


class ExperimentDetailView(APIView):
    """One experiment and its split."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses=serializers.ExperimentSerializer)
    def get(self, request, name):
        return Response(_experiment(name))


class ExperimentSwitchView(APIView):
    """The kill switch: {"enabled": false} sends every tenant to the control within a second; true resumes."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=serializers.ExperimentSwitchSerializer, responses=serializers.ExperimentSerializer)
    def post(self, request, name):
        _experiment(name)
        data = serializers.ExperimentSwitchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.experiment_switch(name=name, enabled=data.validated_data["enabled"], changed_by=_actor(request),
                                   source="api")
        return Response(_experiment(name))


# ---------------------------------------------------------------- tenant API
def _tenant_visible(key: str) -> bool:
    return not key.startswith(("flags.", "experiments.")) and config.tenant_editable(key)


class TenantConfigView(APIView):
    """This tenant's effective view of the keys it may tune, its feature flags and experiment variants; masked."""

    @extend_schema(responses=serializers.TenantConfigSerializer)
    def get(self, request):
        tenant = request.tenant
        rows = [row for row in config.effective(tenant=tenant.schema_name, masked=True) if _tenant_visible(row["key"])]
        flags = sorted((config.get("flags", default={}, tenant=tenant.schema_name) or {}).keys())
        return Response({
            "tenant": tenant.schema_name,
            "keys": rows,
            "flags": {name: config.flag(name, tenant=tenant.schema_name) for name in flags},
            "experiments": keys.experiment_assignments(tenant=tenant.schema_name),
        })


class TenantOverrideListView(generics.ListAPIView):
    """This tenant's overrides; a tenant admin (staff) may POST one within the keys the operator allows."""

    serializer_class = serializers.EntrySerializer

    def get_queryset(self):
        return selectors.tenant_overrides(tenant=self.request.tenant)

    @extend_schema(request=serializers.OverrideWriteSerializer, responses=serializers.EntrySerializer)
    def post(self, request):
        if not request.user.is_staff:
            raise DomainError("Only the tenant's admins may change its settings.", code="permission_denied",
                              status=403)
        data = serializers.OverrideWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.entry_set(key=data.validated_data["key"], value=data.validated_data["value"],
                                   tenant=request.tenant, changed_by=_actor(request), source="tenant-api",
                                   tenant_admin=True)
        return Response(serializers.EntrySerializer(entry).data)
