"""Read-only shapes of the ledger and of rollouts."""

from rest_framework import serializers

from schemas.models import MigrationRecord, Rollout


class MigrationRecordSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField(help_text="schema, data or hybrid, as the migration's file says today.")

    class Meta:
        model = MigrationRecord
        fields = ["id", "schema_name", "app_label", "name", "type", "checksum", "applied_at", "applied_by",
                  "duration_ms", "outcome", "error", "undone_at", "undone_by", "rollout"]

    def get_type(self, record) -> str:
        graph = self.context.get("graph")
        return graph.type_of((record.app_label, record.name)) if graph is not None else "schema"


class RolloutSerializer(serializers.ModelSerializer):
    failed_schemas = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Rollout
        fields = ["id", "status", "targets", "backwards", "started_at", "finished_at", "started_by", "total", "done",
                  "failed_schemas", "results", "phase"]
