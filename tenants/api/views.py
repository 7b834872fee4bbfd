"""Operator API over tenants: thin, every write through tenants.services."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError
from core.permissions import OperatorOnly
from tenants import billing, selectors, services, statements
from tenants.api import serializers
from tenants.models import Plan, Tenant


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("plan", str, description="Only tenants on this plan (its code, e.g. FREE; any case)."),
    OpenApiParameter("status", str, enum=Tenant.Status.values, description="Only tenants with this status."),
]))
class TenantListCreateView(generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = serializers.TenantSerializer

    def get_queryset(self):
        plan = self.request.query_params.get("plan", "").strip()
        status_ = self.request.query_params.get("status", "").strip()
        if plan and not Plan.objects.filter(code__iexact=plan).exists():
            codes = ", ".join(Plan.objects.values_list("code", flat=True))
            raise DomainError(f"There is no plan {plan!r}; use one of {codes}.", code="invalid_filter",
                              detail={"plan": plan})
        if status_ and status_ not in Tenant.Status.values:
            raise DomainError(f"There is no status {status_!r}; use {' or '.join(Tenant.Status.values)}.",
                              code="invalid_filter", detail={"status": status_})
        return selectors.tenant_list(plan=plan or None, status=status_ or None)

    @extend_schema(request=serializers.TenantCreateSerializer, responses={201: serializers.TenantSerializer})
    def post(self, request):
        payload = serializers.TenantCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = services.tenant_create(**payload.validated_data, created_by=request.user.get_username())
        return Response(serializers.TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class _TenantResource(APIView):
    """One tenant's resource. Each subclass answers only the methods it defines (and documents)."""

    permission_classes = [OperatorOnly]

    def _tenant(self, schema_name):
        return get_object_or_404(selectors.tenant_list(), schema_name=schema_name)


class TenantDetailView(_TenantResource):
    @extend_schema(responses=serializers.TenantSerializer)
    def get(self, request, schema_name):
        return Response(serializers.TenantSerializer(self._tenant(schema_name)).data)

    @extend_schema(request=serializers.DeleteRequestSerializer, responses={200: dict})
    def delete(self, request, schema_name):
        tenant = self._tenant(schema_name)
        payload = serializers.DeleteRequestSerializer(data=request.data or request.query_params)
        payload.is_valid(raise_exception=True)
        export = services.tenant_delete(tenant=tenant, confirm=payload.validated_data["confirm"])
        return Response({"deleted": schema_name, "export": str(export)})


class TenantPlanView(_TenantResource):
    @extend_schema(request=serializers.PlanChangeRequestSerializer, responses=serializers.TenantSerializer)
    def post(self, request, schema_name):
        payload = serializers.PlanChangeRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = services.tenant_change_plan(
            tenant=self._tenant(schema_name), plan=payload.validated_data["plan"],
            changed_by=request.user.get_username(),
        )
        return Response(serializers.TenantSerializer(tenant).data)

    @extend_schema(responses=serializers.PlanChangeSerializer(many=True))
    def get(self, request, schema_name):
        changes = self._tenant(schema_name).plan_changes.select_related("from_plan", "to_plan")
        return Response(serializers.PlanChangeSerializer(changes, many=True).data)


class TenantSuspendView(_TenantResource):
    @extend_schema(request=None, responses=serializers.TenantSerializer)
    def post(self, request, schema_name):
        tenant = services.tenant_suspend(tenant=self._tenant(schema_name))
        return Response(serializers.TenantSerializer(tenant).data)


class TenantReactivateView(_TenantResource):
    @extend_schema(request=None, responses=serializers.TenantSerializer)
    def post(self, request, schema_name):
        tenant = services.tenant_reactivate(tenant=self._tenant(schema_name))
        return Response(serializers.TenantSerializer(tenant).data)


class TenantUsageView(_TenantResource):
    @extend_schema(responses=serializers.UsageDaySerializer(many=True))
    def get(self, request, schema_name):
        days = self._tenant(schema_name).usage_days.order_by("-date")[:90]
        return Response(serializers.UsageDaySerializer(days, many=True).data)


class PlanListView(generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = serializers.PlanSerializer
    queryset = Plan.objects.all()
    pagination_class = None


def _statement(tenant, month: str):
    try:
        return statements.tenant_statement(tenant=tenant, month=month)
    except ValueError as error:
        raise DomainError(str(error), code="invalid_month", detail={"month": month[:20]}) from None


class TenantStatementView(_TenantResource):
    """A tenant's statement of one month (YYYY-MM) as JSON: base lines, overage lines, calls by surface, total."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, schema_name, month):
        return Response(billing.statement_data(_statement(self._tenant(schema_name), month)))


class TenantStatementCsvView(_TenantResource):
    """The same statement as CSV (the admin's download): one row per line, then the overage and the total."""

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, schema_name, month):
        statement = _statement(self._tenant(schema_name), month)
        response = HttpResponse(billing.statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="statement-{schema_name}-{statement.month}.csv"'
        return response
