from rest_framework import serializers

from tenants.models import Tenant


class TenantSerializer(serializers.ModelSerializer):
    domains = serializers.SlugRelatedField(many=True, read_only=True, slug_field="domain")

    class Meta:
        model = Tenant
        fields = ["id", "name", "schema_name", "status", "created_at", "domains"]
        read_only_fields = fields


class TenantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    schema_name = serializers.CharField(max_length=48)
    domain = serializers.CharField(max_length=253, required=False)
    admin_email = serializers.EmailField(required=False)
    admin_password = serializers.CharField(required=False, write_only=True, style={"input_type": "password"})
