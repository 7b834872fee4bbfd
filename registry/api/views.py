"""Operator API of the registry: registration, heartbeats, discovery. Thin: serializers check the request's
shape, services do the work."""

from __future__ import annotations

import time

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import balancing, conf, inputs, registration, selectors, tokens
from registry.api.auth import IsOperator, IsOperatorOrService, ServiceTokenAuthentication, token_service
from registry.api.serializers import (
    DiscoverySerializer,
    EndpointSerializer,
    EtcdMirrorListSerializer,
    InstanceQuerySerializer,
    InstanceSerializer,
    MaintenanceRequestSerializer,
    RegisterRequestSerializer,
    ServiceListSerializer,
    TokenRequestSerializer,
)
from registry.models import ServiceInstance
from security.authentication import MfaSessionAuthentication, ThrottledBasicAuthentication

INDEX_HEADER = "X-Registry-Index"


class RegistryView(APIView):
    # An operator's session and basic auth go through the same lockout and MFA rules as the rest of the API.
    authentication_classes = [ServiceTokenAuthentication, MfaSessionAuthentication, ThrottledBasicAuthentication]
    permission_classes = [IsOperatorOrService]


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RegisterView(RegistryView):
    """Register an instance, or update it when its id is registered already (idempotent)."""

    @extend_schema(request=RegisterRequestSerializer, responses={200: InstanceSerializer, 201: InstanceSerializer})
    def post(self, request):
        data = _valid(RegisterRequestSerializer, request.data)
        existed = ServiceInstance.objects.filter(service_id=data["service_id"]).exists()
        checks = data.get("checks")
        instance = registration.service_register(
            service_id=data["service_id"], name=data["name"], host=data["host"], port=data.get("port"),
            tags=data.get("tags"), metadata=data.get("metadata"), weight=data.get("weight", 1),
            checks=None if checks is None else [dict(check) for check in checks], token_service=token_service(request),
        )
        instance = ServiceInstance.objects.prefetch_related("checks").get(pk=instance.pk)
        return Response(InstanceSerializer(instance).data, status=status.HTTP_200_OK if existed else 201)

    put = post


class HeartbeatView(RegistryView):
    """A heartbeat: passes the instance's TTL checks."""

    @extend_schema(request=None, responses={200: dict})
    def put(self, request, service_id):
        current = registration.service_heartbeat(service_id=service_id, token_service=token_service(request))
        return Response({"service_id": service_id, "status": current})

    post = put


class DeregisterView(RegistryView):
    @extend_schema(request=None, responses={204: None})
    def put(self, request, service_id):
        registration.service_deregister(service_id=service_id, token_service=token_service(request),
                                    reason=f"by {request.user}")
        return Response(status=status.HTTP_204_NO_CONTENT)

    delete = post = put


class MaintenanceView(RegistryView):
    permission_classes = [IsOperator]

    @extend_schema(request=MaintenanceRequestSerializer, responses={200: InstanceSerializer})
    def put(self, request, service_id):
        data = _valid(MaintenanceRequestSerializer, request.data)
        instance = registration.maintenance_set(service_id=service_id, on=data["enable"], reason=data.get("reason", ""))
        return Response(InstanceSerializer(instance).data)


class TokenCreateView(RegistryView):
    """Create (or rotate) the token of a service. The token is in this response only."""

    permission_classes = [IsOperator]

    @extend_schema(request=TokenRequestSerializer, responses={201: dict})
    def post(self, request):
        data = _valid(TokenRequestSerializer, request.data)
        token, plaintext = tokens.token_create(service_name=data["service_name"], rotate=data["rotate"])
        return Response({"service_name": token.service_name, "token": plaintext}, status=status.HTTP_201_CREATED)


class ServiceListView(RegistryView):
    """Every service name with its instance counts by status."""

    @extend_schema(responses=ServiceListSerializer)
    def get(self, request):
        active = set(selectors.self_preservation_active().values_list("service_name", flat=True))
        rows = [{**row, "self_preservation": row["name"] in active} for row in selectors.service_summary()]
        return Response(ServiceListSerializer({"results": rows}).data)


class EtcdMirrorView(RegistryView):
    """Where the etcd mirror stands: process, heartbeat, endpoints, last sync, counts, watch revision, errors."""

    permission_classes = [IsOperator]

    @extend_schema(responses=EtcdMirrorListSerializer)
    def get(self, request):
        return Response(EtcdMirrorListSerializer({"results": selectors.etcd_mirror_states()}).data)


def _wait_for_change(name: str, index: int | None, wait: str | None) -> int:
    """Consul-style blocking query: return once the service's index passes `index`, or after `wait`."""
    current = selectors.service_index(name)
    if index is None:
        return current
    seconds = inputs.parse_duration(wait or "30s", field_name="wait")
    deadline = time.monotonic() + min(seconds, conf.get("MAX_BLOCKING_WAIT"))
    while current <= index and time.monotonic() < deadline:
        time.sleep(0.1)
        current = selectors.service_index(name)
    return current


class InstanceListView(RegistryView):
    """Instances of a service, filtered by every ?tag= and by ?status=; ?index=&wait= blocks like Consul."""

    @extend_schema(parameters=[
        OpenApiParameter("tag", str, many=True), OpenApiParameter("status", str, many=True),
        OpenApiParameter("index", int), OpenApiParameter("wait", str),
    ], responses=DiscoverySerializer)
    def get(self, request, name):
        query = InstanceQuerySerializer.from_query(request.query_params)
        query.is_valid(raise_exception=True)  # every parameter judged before a blocking query waits
        params = query.validated_data
        tags, statuses = selectors.discovery_query(name, tags=params.get("tag"), status=params.get("status"))
        index = _wait_for_change(name, params.get("index"), params.get("wait"))
        endpoints = selectors.discover(name, tags=tags, status=statuses)
        response = Response({"name": name, "index": index, "results": [e.as_dict() for e in endpoints]})
        response[INDEX_HEADER] = str(index)
        return response


class NextInstanceView(RegistryView):
    """The next healthy instance by weighted round-robin, fair across every web process."""

    @extend_schema(parameters=[OpenApiParameter("tag", str, many=True)], responses={
        200: EndpointSerializer,
        # What a load balancer answers: the service has no routable instance now (none, or none healthy).
        503: OpenApiResponse(description="No healthy instance of the service (code no_healthy_instance)."),
    })
    def get(self, request, name):
        endpoint = balancing.next_instance(name, tags=request.query_params.getlist("tag"))
        return Response(endpoint.as_dict())
