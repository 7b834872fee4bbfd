"""Operator API: drift status of every schema, each schema's ledger, rollouts. Read-only, operators only."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import OperatorOnly
from schemas import selectors
from schemas.api import serializers
from schemas.graph import load_graph
from schemas.models import Rollout
from schemas.services import drift_report


class StatusView(APIView):
    permission_classes = [OperatorOnly]

    @extend_schema(parameters=[OpenApiParameter("schema", str, many=True, description="Only these tenant schemas."),
                               OpenApiParameter("problems", bool, description="Only schemas with problems.")],
                   responses={200: dict})
    def get(self, request):
        schemas = request.query_params.getlist("schema") or None
        report = drift_report(schemas=schemas, include_public=not schemas).as_dict()
        if request.query_params.get("problems") in ("1", "true"):
            report["schemas"] = [s for s in report["schemas"] if any(
                s[k] for k in ("pending", "file_gone", "changed", "missing_tables", "missing_columns")
            ) or not s["exists"]]
        return Response(report)


class HistoryView(generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = serializers.MigrationRecordSerializer

    def get_queryset(self):
        return selectors.schema_history(schema_name=self.kwargs["schema_name"])

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "graph": load_graph()}  # the migrations' types, read once


class RolloutListView(generics.ListAPIView):
    permission_classes = [OperatorOnly]
    serializer_class = serializers.RolloutSerializer
    queryset = Rollout.objects.all()


class RolloutDetailView(APIView):
    permission_classes = [OperatorOnly]

    @extend_schema(responses={200: serializers.RolloutSerializer})
    def get(self, request, pk: int):
        return Response(serializers.RolloutSerializer(get_object_or_404(Rollout, pk=pk)).data)
