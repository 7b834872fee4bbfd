"""Read-only shapes of the ledger and of rollouts."""

from rest_framework import serializers

from schemas.models import MigrationRecord, Rollout


class MigrationRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = MigrationRecord
        fields = ["id", "schema_name", "app_label", "name", "checksum", "applied_at", "applied_by", "duration_ms",
                  "outcome", "error", "undone_at", "undone_by", "rollout"]


class RolloutSerializer(serializers.ModelSerializer):
    failed_schemas = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Rollout
        fields = ["id", "status", "targets", "backwards", "started_at", "finished_at", "started_by", "total", "done",
                  "failed_schemas", "results"]
