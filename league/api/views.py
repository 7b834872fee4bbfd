"""Tenant API over the tenant's own league data: thin, reads through selectors."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from league import selectors, services
from league.api import serializers
from league.models import Player, StatModel


class TeamListView(generics.ListAPIView):
    serializer_class = serializers.TeamSerializer

    def get_queryset(self):
        return selectors.team_list()


class TeamDetailView(generics.RetrieveAPIView):
    serializer_class = serializers.TeamSerializer

    def get_queryset(self):
        return selectors.team_list()


class PlayerListView(generics.ListAPIView):
    serializer_class = serializers.PlayerSerializer

    @extend_schema(parameters=[serializers.PlayerFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = serializers.PlayerFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.player_list(
            team_id=filters.validated_data.get("team"), search=filters.validated_data.get("search")
        )


class PlayerDetailView(generics.RetrieveAPIView):
    serializer_class = serializers.PlayerSerializer

    def get_queryset(self):
        return selectors.player_list()


class PlayerSeasonAveragesView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("season", str, description="Like 2025-26")],
        responses=serializers.PlayerSeasonAveragesSerializer,
    )
    def get(self, request, pk):
        player = get_object_or_404(Player, pk=pk)
        filters = serializers.GameFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.player_season_averages(
            player_id=player.pk, season=filters.validated_data.get("season")
        )
        return Response(
            {"player": player.full_name, "seasons": serializers.SeasonAverageSerializer(rows, many=True).data}
        )


class GameListView(generics.ListAPIView):
    serializer_class = serializers.GameSerializer

    @extend_schema(parameters=[serializers.GameFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = serializers.GameFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.game_list(
            season=filters.validated_data.get("season"), team_id=filters.validated_data.get("team")
        )


class GameDetailView(generics.RetrieveAPIView):
    serializer_class = serializers.GameSerializer

    def get_queryset(self):
        return selectors.game_list()


class StatModelListCreateView(generics.ListAPIView):
    serializer_class = serializers.StatModelSerializer

    def get_queryset(self):
        return StatModel.objects.all()

    @extend_schema(request=serializers.StatModelSerializer, responses={201: serializers.StatModelSerializer})
    def post(self, request):
        payload = serializers.StatModelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        model = services.stat_model_create(**payload.validated_data)
        return Response(serializers.StatModelSerializer(model).data, status=status.HTTP_201_CREATED)
