"""Operator API of the registry: registration, heartbeats, discovery. Thin: services do the work."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from services import conf, selectors, services
from services.api.auth import IsOperator, IsOperatorOrService, ServiceTokenAuthentication, token_service
from services.models import HealthCheck, ServiceInstance

INDEX_HEADER = "X-Registry-Index"


class RegistryView(APIView):
    authentication_classes = [ServiceTokenAuthentication, SessionAuthentication, BasicAuthentication]
    permission_classes = [IsOperatorOrService]


class CheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = HealthCheck
        fields = ["name", "kind", "interval", "timeout", "http_url", "http_expected_status", "tcp_host", "tcp_port",
                  "failures_before_critical", "successes_before_passing", "deregister_critical_after", "status",
                  "output", "last_checked_at"]


class InstanceSerializer(serializers.ModelSerializer):
    checks = CheckSerializer(many=True, read_only=True)

    class Meta:
        model = ServiceInstance
        fields = ["service_id", "name", "host", "port", "tags", "metadata", "weight", "status", "maintenance",
                  "source", "registered_at", "last_heartbeat", "checks"]


class RegisterView(RegistryView):
    """Register an instance, or update it when its id is registered already (idempotent)."""

    @extend_schema(request=InstanceSerializer, responses={200: InstanceSerializer, 201: InstanceSerializer})
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["A JSON object is expected."]})
        existed = ServiceInstance.objects.filter(service_id=str(data.get("service_id") or "")).exists()
        instance = services.service_register(
            service_id=data.get("service_id"), name=data.get("name"), host=data.get("host"), port=data.get("port"),
            tags=data.get("tags"), metadata=data.get("metadata"), weight=data.get("weight", 1),
            checks=data.get("checks"), token_service=token_service(request),
        )
        instance = ServiceInstance.objects.prefetch_related("checks").get(pk=instance.pk)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_200_OK if existed else 201)

    put = post


class HeartbeatView(RegistryView):
    """A heartbeat: passes the instance's TTL checks."""

    @extend_schema(request=None, responses={200: dict})
    def put(self, request, service_id):
        current = services.service_heartbeat(service_id=service_id, token_service=token_service(request))
        return Response({"service_id": service_id, "status": current})

    post = put


class DeregisterView(RegistryView):
    @extend_schema(request=None, responses={204: None})
    def put(self, request, service_id):
        services.service_deregister(service_id=service_id, token_service=token_service(request),
                                    reason=f"by {request.user}")
        return Response(status=status.HTTP_204_NO_CONTENT)

    delete = post = put


class MaintenanceView(RegistryView):
    permission_classes = [IsOperator]

    @extend_schema(request=None, responses={200: InstanceSerializer})
    def put(self, request, service_id):
        enable = request.data.get("enable", True) if isinstance(request.data, dict) else True
        if not isinstance(enable, bool):
            raise ValidationError({"enable": "true or false."})
        instance = services.maintenance_set(service_id=service_id, on=enable,
                                            reason=str(request.data.get("reason", ""))[:200])
        return Response(InstanceSerializer(instance).data)


class TokenCreateView(RegistryView):
    """Create (or rotate) the token of a service. The token is in this response only."""

    permission_classes = [IsOperator]

    @extend_schema(request=None, responses={201: dict})
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        token, plaintext = services.token_create(service_name=data.get("service_name"),
                                                 rotate=bool(data.get("rotate")))
        return Response({"service_name": token.service_name, "token": plaintext}, status=status.HTTP_201_CREATED)


class ServiceListView(RegistryView):
    """Every service name with its instance counts by status."""

    def get(self, request):
        active = set(selectors.self_preservation_active().values_list("service_name", flat=True))
        rows = [{**row, "self_preservation": row["name"] in active} for row in selectors.service_summary()]
        return Response({"results": rows})


def _wait_for_change(name: str, index_param: str | None, wait_param: str | None) -> int:
    """Consul-style blocking query: return once the service's index passes `index`, or after `wait`."""
    current = selectors.service_index(name)
    if index_param in (None, ""):
        return current
    try:
        index = int(index_param)
        wait = services.parse_duration(wait_param or "30s", field_name="wait")
    except ValueError as error:
        raise ValidationError({"index": "An integer is expected."}) from error
    deadline = time.monotonic() + min(wait, conf.get("MAX_BLOCKING_WAIT"))
    while current <= index and time.monotonic() < deadline:
        time.sleep(0.1)
        current = selectors.service_index(name)
    return current


class InstanceListView(RegistryView):
    """Instances of a service, filtered by every ?tag= and by ?status=; ?index=&wait= blocks like Consul."""

    @extend_schema(parameters=[
        OpenApiParameter("tag", str, many=True), OpenApiParameter("status", str, many=True),
        OpenApiParameter("index", int), OpenApiParameter("wait", str),
    ])
    def get(self, request, name):
        index = _wait_for_change(name, request.query_params.get("index"), request.query_params.get("wait"))
        endpoints = selectors.discover(name, tags=request.query_params.getlist("tag"),
                                       status=request.query_params.getlist("status") or None)
        response = Response({"name": name, "index": index, "results": [e.as_dict() for e in endpoints]})
        response[INDEX_HEADER] = str(index)
        return response


class NextInstanceView(RegistryView):
    """The next healthy instance by weighted round-robin, fair across every web process."""

    @extend_schema(parameters=[OpenApiParameter("tag", str, many=True)])
    def get(self, request, name):
        endpoint = services.next_instance(name, tags=request.query_params.getlist("tag"))
        return Response(endpoint.as_dict())
