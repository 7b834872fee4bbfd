"""Shapes of the configuration API; values are masked before they reach a serializer."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from configuration.conf import PUBLIC, config
from configuration.models import ConfigChange, ConfigEntry
from core.masking import MASK


def shown(key: str, value, *, secret: bool, scope: str):
    if secret and value not in (None, ""):
        return MASK
    return config.mask(key, value, tenant=scope)


class EntrySerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="schema_name", read_only=True, allow_null=True,
                                          help_text="Null for the database (operator) layer.")
    value = serializers.SerializerMethodField()
    layer = serializers.CharField(read_only=True)

    class Meta:
        model = ConfigEntry
        fields = ("id", "key", "tenant", "layer", "value", "secret", "version", "updated_at", "updated_by")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_value(self, obj):
        return shown(obj.key, obj.value, secret=obj.secret, scope=obj.tenant.schema_name if obj.tenant_id else PUBLIC)


class EntryWriteSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    value = serializers.JSONField(allow_null=True)
    tenant = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                   help_text="Schema name of the tenant layer; empty for the database layer.")
    secret = serializers.BooleanField(required=False, allow_null=True, default=None)


class RollbackDeletedSerializer(serializers.Serializer):
    """A rollback to a change after which the entry did not exist: the entry is removed."""

    deleted = serializers.BooleanField()


class OverrideWriteSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    value = serializers.JSONField(allow_null=True)


class EffectiveRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField()
    source = serializers.CharField()
    secret = serializers.BooleanField()


class EffectiveConfigSerializer(serializers.Serializer):
    tenant = serializers.CharField(allow_null=True)
    environment = serializers.CharField()
    keys = EffectiveRowSerializer(many=True)
    errors = serializers.ListField(child=serializers.CharField())


class LayerValueSerializer(serializers.Serializer):
    layer = serializers.CharField()
    value = serializers.JSONField()


class KeySerializer(serializers.Serializer):
    key = serializers.CharField()
    exists = serializers.BooleanField()
    value = serializers.JSONField()
    source = serializers.CharField()
    secret = serializers.BooleanField()
    layers = LayerValueSerializer(many=True)


class TenantConfigSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    keys = EffectiveRowSerializer(many=True)
    flags = serializers.DictField(child=serializers.BooleanField())
    experiments = serializers.DictField(child=serializers.CharField(allow_null=True),
                                        help_text="Each experiment's variant for this tenant.")


class ExperimentVariantSerializer(serializers.Serializer):
    name = serializers.CharField()
    weight = serializers.IntegerField()
    weight_share = serializers.FloatField(help_text="The variant's weight, in percent of all weights.")
    exposures = serializers.IntegerField(help_text="Evaluations that gave a tenant this variant (written in batches).")
    exposure_share = serializers.FloatField(help_text="Its exposures, in percent of the experiment's.")


class ExperimentSerializer(serializers.Serializer):
    name = serializers.CharField()
    defined = serializers.BooleanField(help_text="False: only counts remain of a removed experiment.")
    enabled = serializers.BooleanField(help_text="False: killed or not started, every tenant gets the control.")
    control = serializers.CharField(allow_null=True)
    overrides = serializers.DictField(child=serializers.CharField(), help_text="Variant per tenant schema.")
    exposures = serializers.IntegerField()
    variants = ExperimentVariantSerializer(many=True)


class ExperimentSwitchSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="false: the kill switch; true: run the experiment.")


class ChangeSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="schema_name", read_only=True, allow_null=True,
                                          help_text="Null for the database (operator) layer.")
    old_value = serializers.SerializerMethodField()
    new_value = serializers.SerializerMethodField()

    class Meta:
        model = ConfigChange
        fields = ("id", "key", "tenant", "version", "action", "old_value", "new_value", "existed_before",
                  "exists_after", "secret", "changed_by", "source", "changed_at")

    def _value(self, obj, value):
        return shown(obj.key, value, secret=obj.secret or config.is_secret(obj.key), scope=PUBLIC)

    @extend_schema_field(OpenApiTypes.ANY)
    def get_old_value(self, obj):
        return self._value(obj, obj.old_value)

    @extend_schema_field(OpenApiTypes.ANY)
    def get_new_value(self, obj):
        return self._value(obj, obj.new_value)
