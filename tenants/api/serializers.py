from rest_framework import serializers

from tenants import quotas
from tenants.models import Plan, PlanChange, Tenant, UsageDay


class PlanSerializer(serializers.ModelSerializer):
    max_task_priority = serializers.SerializerMethodField(help_text="LOW, NORMAL, HIGH or CRITICAL.")

    class Meta:
        model = Plan
        fields = ["code", "name", "max_task_priority", "max_task_batch_size", "max_task_chain_length",
                  "max_active_task_runs", "monthly_price_cents"]

    def get_field_names(self, declared_fields, info):
        # One field per quota kind (tenants.quotas), read when the serializer is built, after the name.
        code, name, *rest = super().get_field_names(declared_fields, info)
        return [code, name, *quotas.plan_limit_fields(), *rest]

    def get_max_task_priority(self, plan) -> str:
        return plan.get_max_task_priority_display().upper()


class TenantSerializer(serializers.ModelSerializer):
    domains = serializers.SlugRelatedField(many=True, read_only=True, slug_field="domain")
    plan = serializers.SlugRelatedField(read_only=True, slug_field="code", allow_null=True)
    # Blank until a tenant admin sets one: documented as a plain string, since "" is not an email.
    support_email = serializers.CharField(read_only=True, help_text="An email address, or empty when none is set.")

    class Meta:
        model = Tenant
        fields = ["id", "name", "schema_name", "status", "plan", "created_at", "domains", "storage_bytes",
                  "storage_measured_at", "display_name", "primary_color", "support_email"]
        read_only_fields = fields


class TenantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    schema_name = serializers.CharField(max_length=48)
    plan = serializers.CharField(max_length=32, required=False)
    domain = serializers.CharField(max_length=253, required=False)
    admin_email = serializers.EmailField(required=False)
    admin_password = serializers.CharField(required=False, write_only=True, style={"input_type": "password"})


class PlanChangeRequestSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=32)


class DeleteRequestSerializer(serializers.Serializer):
    confirm = serializers.CharField(help_text="The tenant's schema name, repeated.")


class PlanChangeSerializer(serializers.ModelSerializer):
    from_plan = serializers.SlugRelatedField(read_only=True, slug_field="code", allow_null=True,
                                             help_text="Null for a tenant's first plan.")
    to_plan = serializers.SlugRelatedField(read_only=True, slug_field="code")

    class Meta:
        model = PlanChange
        fields = ["from_plan", "to_plan", "changed_at", "changed_by"]


class UsageDaySerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageDay
        fields = ["date", "api_calls", "peak_concurrency", "storage_bytes", "users", "saved_models"]
