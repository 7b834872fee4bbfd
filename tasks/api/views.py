"""Task API for the operator (public site) and for each tenant (its own site): thin callers of services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError
from core.permissions import OperatorOnly
from tasks import actions, registry, selectors
from tasks.api import serializers
from tasks.models import PUBLIC_STATUSES, Priority, TaskRun, parse_priority


def _request_tenant(request):
    tenant = getattr(request, "tenant", None)
    return None if tenant is None or tenant.schema_name == "public" else tenant


class _Scoped:
    """Operator views see every run; tenant views (is_tenant_site) only their tenant's."""

    is_tenant_site = False

    def scope(self, request):
        tenant = _request_tenant(request)
        if self.is_tenant_site and tenant is None:
            raise Http404("No tenant here.")
        return tenant if self.is_tenant_site else None

    def submitter(self, request) -> str:
        tenant = _request_tenant(request)
        user = request.user.get_username()
        return f"{tenant.schema_name}:{user}" if tenant else user


class TaskRunListView(_Scoped, generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = serializers.TaskRunSerializer

    def get_queryset(self):
        params = self.request.query_params
        priority = params.get("priority")
        if priority:
            try:
                priority = parse_priority(priority)
            except ValueError:
                raise DomainError(f"Unknown priority {priority!r}.", detail={"priority": Priority.names}) from None
        status_ = params.get("status")
        if status_ and status_ not in PUBLIC_STATUSES:
            raise DomainError(f"Unknown status {status_!r}.", detail={"status": PUBLIC_STATUSES})
        return selectors.task_run_list(
            tenant=self.scope(self.request), status=status_, priority=priority, name=params.get("name"),
            schema_name=None if self.is_tenant_site else params.get("tenant"),
        ).prefetch_related("depends_on")

    def _submit_kwargs(self, data) -> dict:
        data = dict(data)
        data["arguments"] = data.pop("args", None)
        return data

    @extend_schema(request=serializers.OperatorSubmitSerializer, responses={201: serializers.TaskRunSerializer})
    def post(self, request):
        payload_class = serializers.SubmitSerializer if self.is_tenant_site else serializers.OperatorSubmitSerializer
        payload = payload_class(data=request.data)
        payload.is_valid(raise_exception=True)
        data = self._submit_kwargs(payload.validated_data)
        if self.is_tenant_site:
            tenant = self.scope(request)
            _tenant_may_submit(data["name"])
        else:
            tenant = _tenant_by_schema(data.pop("tenant", ""))
        run = actions.task_submit(**data, tenant=tenant, submitted_by=self.submitter(request),
                                   by_operator=not self.is_tenant_site)
        return Response(serializers.TaskRunSerializer(run).data, status=status.HTTP_201_CREATED)


def _tenant_may_submit(name: str) -> None:
    # An operator task is indistinguishable from an unknown name, and the names listed are the tenant's.
    registry.get_spec(name, for_tenant=True)


def _tenant_by_schema(schema_name: str):
    if not schema_name or schema_name == "public":
        return None
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(schema_name=schema_name).first()
    if tenant is None:
        raise ValidationError({"tenant": f"No tenant {schema_name!r}."}, code="not_found")
    return tenant


class TaskRunBatchView(_Scoped, APIView):
    permission_classes = [OperatorOnly]

    @extend_schema(request=serializers.BatchSerializer, responses={201: serializers.TaskRunSerializer(many=True)})
    def post(self, request):
        payload = serializers.BatchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = self.scope(request) if self.is_tenant_site else _tenant_by_schema(request.data.get("tenant", ""))
        # Refused by size before any item is read.
        actions.task_batch_size_validate(count=len(payload.validated_data["tasks"]), tenant=tenant,
                                          by_operator=not self.is_tenant_site)
        # One serializer for all items: DRF builds its fields once, not once per item.
        parsed = serializers.BatchItemSerializer(data=payload.validated_data["tasks"], many=True)
        if not parsed.is_valid():
            # DRF reports a many=True serializer's errors as a list, or (3.15+) as a dict keyed by item index.
            errors = parsed.errors
            pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
            index, item_errors = next((i, e) for i, e in pairs if e)
            if not isinstance(item_errors, dict):
                item_errors = {"non_field_errors": item_errors}
            raise ValidationError({f"tasks[{index}]": [f"{field}: {' '.join(map(str, messages))}"
                                                       for field, messages in item_errors.items()]})
        items = [dict(data) for data in parsed.validated_data]
        if self.is_tenant_site:
            for data in items:
                _tenant_may_submit(data["name"])
        runs = actions.task_submit_batch(items=items, tenant=tenant, submitted_by=self.submitter(request),
                                          by_operator=not self.is_tenant_site)
        runs = selectors.task_runs_in_order(run_ids=[run.pk for run in runs])
        return Response(serializers.TaskRunSerializer(runs, many=True).data, status=status.HTTP_201_CREATED)


class _TaskRunResource(_Scoped, APIView):
    """One run. Each subclass answers only the methods it defines (and documents)."""

    permission_classes = [OperatorOnly]

    def get_run(self, request, run_id) -> TaskRun:
        try:
            return selectors.task_run_get(tenant=self.scope(request), run_id=run_id)
        except TaskRun.DoesNotExist:
            raise Http404(f"No task run {run_id}.") from None


class TaskRunDetailView(_TaskRunResource):
    @extend_schema(responses=serializers.TaskRunDetailSerializer)
    def get(self, request, run_id):
        run = self.get_run(request, run_id)
        return Response(serializers.TaskRunDetailSerializer(run, context={"request": request}).data)


class TaskRunCancelView(_TaskRunResource):
    @extend_schema(request=None, responses=serializers.TaskRunSerializer)
    def post(self, request, run_id):
        run = actions.task_cancel(run=self.get_run(request, run_id), cancelled_by=self.submitter(request))
        return Response(serializers.TaskRunSerializer(run).data)


class TaskCatalogueView(_Scoped, APIView):
    permission_classes = [OperatorOnly]

    @extend_schema(responses={200: dict})
    def get(self, request):
        specs = registry.specs(for_tenant=True) if self.is_tenant_site else registry.specs()
        return Response({"tasks": [spec.as_dict() for spec in specs]})


class QueueDepthView(_Scoped, APIView):
    permission_classes = [OperatorOnly]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"queued_by_priority": selectors.queue_depth(tenant=self.scope(request))})


class WorkerListView(generics.ListAPIView):
    """Worker health (operator only): each cluster worker, live ones first; `?live=true` only those not ended,
    `?live=false` only the ended ones."""

    permission_classes = [OperatorOnly]
    serializer_class = serializers.WorkerSerializer

    def get_queryset(self):
        live = self.request.query_params.get("live")
        if live not in (None, "true", "false"):
            raise DomainError(f"live must be true or false, not {live!r}.", detail={"live": ["true", "false"]})
        return selectors.worker_list(live=None if live is None else live == "true")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(parameters=[OpenApiParameter("live", bool, description="true: not ended; false: ended")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# The tenant site's versions: same behaviour, scoped to request.tenant, any
# authenticated user of that tenant (its own users only: auth is per schema).
class TenantMember(permissions.IsAuthenticated):
    pass


def _tenant_view(view):
    return type(f"Tenant{view.__name__}", (view,), {"is_tenant_site": True, "permission_classes": [TenantMember]})


TenantTaskRunListView = _tenant_view(TaskRunListView)
TenantTaskRunBatchView = _tenant_view(TaskRunBatchView)
TenantTaskRunDetailView = _tenant_view(TaskRunDetailView)
TenantTaskRunCancelView = _tenant_view(TaskRunCancelView)
TenantTaskCatalogueView = _tenant_view(TaskCatalogueView)
TenantQueueDepthView = _tenant_view(QueueDepthView)
