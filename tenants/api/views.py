"""Operator API over tenants: thin, every write through tenants.services."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response

from tenants import selectors, services
from tenants.api.serializers import TenantCreateSerializer, TenantSerializer


class OperatorOnly(permissions.IsAdminUser):
    """Staff users of the public schema, i.e. Courtside's operators."""


class TenantListCreateView(generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = TenantSerializer

    def get_queryset(self):
        return selectors.tenant_list()

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer})
    def post(self, request):
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = services.tenant_create(**serializer.validated_data)
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class TenantDetailView(generics.RetrieveAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = TenantSerializer
    lookup_field = "schema_name"

    def get_queryset(self):
        return selectors.tenant_list()
