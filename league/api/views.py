"""Tenant API over the tenant's own league data: thin, reads through selectors, answered from the response cache."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from configuration import keys
from league import selectors, services
from league.api import serializers
from league.api.caching import cached_read
from league.models import Player, StatModel


class TeamListView(generics.ListAPIView):
    serializer_class = serializers.TeamSerializer
    get = cached_read(generics.ListAPIView.get)

    def get_queryset(self):
        return selectors.team_list()


class TeamDetailView(generics.RetrieveAPIView):
    serializer_class = serializers.TeamSerializer
    get = cached_read(generics.RetrieveAPIView.get)

    def get_queryset(self):
        return selectors.team_list()


class PlayerListView(generics.ListAPIView):
    serializer_class = serializers.PlayerSerializer

    @extend_schema(parameters=[serializers.PlayerFilterSerializer])
    @cached_read
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
    get = cached_read(generics.RetrieveAPIView.get)

    def get_queryset(self):
        return selectors.player_list()


class PlayerSeasonAveragesView(APIView):
    """A player's per-season averages and player score, for reports.default_season unless ?season= says."""

    @extend_schema(parameters=[serializers.AveragesFilterSerializer], responses=serializers.PlayerAveragesSerializer)
    @cached_read
    def get(self, request, pk):
        player = get_object_or_404(Player, pk=pk)
        filters = serializers.AveragesFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        season = filters.validated_data.get("season") or keys.reports_default_season()
        scoring = selectors.scoring_current()
        rows = selectors.player_season_averages(
            player_id=player.pk, season=None if season == "all" else season, scoring=scoring
        )
        return Response({
            "player": player.full_name,
            "scoring": scoring.as_dict(),
            "seasons": serializers.SeasonAverageSerializer(rows, many=True).data,
        })


class GameListView(generics.ListAPIView):
    serializer_class = serializers.GameSerializer

    @extend_schema(parameters=[serializers.GameFilterSerializer])
    @cached_read
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
    get = cached_read(generics.RetrieveAPIView.get)

    def get_queryset(self):
        return selectors.game_list()


class StatModelListCreateView(generics.ListAPIView):
    serializer_class = serializers.StatModelSerializer
    get = cached_read(generics.ListAPIView.get)

    def get_queryset(self):
        return StatModel.objects.all()

    @extend_schema(request=serializers.StatModelSerializer, responses={201: serializers.StatModelSerializer})
    def post(self, request):
        payload = serializers.StatModelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        model = services.stat_model_create(**payload.validated_data)
        return Response(serializers.StatModelSerializer(model).data, status=status.HTTP_201_CREATED)
