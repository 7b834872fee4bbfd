"""Request and response shapes of the registry's API.

Requests are strict: a JSON string where a string is expected (DRF's
CharField would store 5 as "5"), a JSON integer where a number of things is
(DRF's IntegerField would take "80" and 80.0), true or false where a switch
is, an object or a list where one is, and no field the API does not know. NUL
bytes are refused (DRF's ProhibitNullCharactersValidator). Ranges and
patterns are the models' and services' own (registry.registration, run by every
caller), so the API, the commands and the admin refuse the same values with
the same messages.
"""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from registry import kinds
from registry.inputs import DURATION_PATTERN
from registry.models import (
    MAX_CHECKS,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    HealthCheck,
    ServiceInstance,
    Status,
)

MAX_INDEX = 2**63 - 1


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "A string is expected."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A whole number is expected."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "true or false is expected."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field({"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "example": "10s"}]})
class ConsulDurationField(serializers.Field):
    """Seconds as a JSON number, or a Consul-style string ("10s", "500ms", "1m"). Passed on as given."""

    default_error_messages = {"invalid": "A duration is expected: a number of seconds or a string such as '10s'."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        if isinstance(data, str) and not DURATION_PATTERN.match(data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.Field):
    """A JSON object; its contents are bounded by the model (keys, depth, sizes, NUL bytes, finite numbers)."""

    default_error_messages = {"invalid": "A JSON object is expected."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, instead of dropping them unseen."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        return super().to_internal_value(data)


def _spec_field(what) -> serializers.Field:
    """A request field for a kind's own spec key (registry.kinds: TEXT, (TEXT, max length), INTEGER, SECRET)."""
    what, max_length = what if isinstance(what, tuple) else (what, 500)
    if what == kinds.INTEGER:
        return StrictIntegerField(required=False, allow_null=True)
    if what == kinds.SECRET:  # written, never read back
        return StrictCharField(max_length=2000, required=False, allow_blank=True, write_only=True)
    return StrictCharField(max_length=max_length, required=False, allow_blank=True)


class CheckRequestSerializer(StrictSerializer):
    """The fields every check has, and each registered kind's own (read from registry.kinds when used)."""

    name = StrictCharField(max_length=64, required=False)
    kind = StrictCharField(max_length=32, required=False)
    type = StrictCharField(max_length=32, required=False)
    ttl = ConsulDurationField(required=False, allow_null=True)
    interval = ConsulDurationField(required=False, allow_null=True)
    timeout = ConsulDurationField(required=False, allow_null=True)
    deregister_critical_after = ConsulDurationField(required=False, allow_null=True)
    failures_before_critical = StrictIntegerField(required=False)
    successes_before_passing = StrictIntegerField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        for key, what in kinds.spec_fields().items():
            fields.setdefault(key, _spec_field(what))
        return fields

    @property
    def fields(self):
        """DRF caches a serializer's fields for its life; these are rebuilt once a kind is (un)registered."""
        cached = self.__dict__.get("_kind_fields")
        if cached is None or cached[0] != kinds.generation():
            bound = BindingDict(self)
            for key, value in self.get_fields().items():
                bound[key] = value
            cached = self.__dict__["_kind_fields"] = (kinds.generation(), bound)
        return cached[1]


class RegisterRequestSerializer(StrictSerializer):
    service_id = StrictCharField(max_length=128)
    name = StrictCharField(max_length=63)
    host = StrictCharField(max_length=253)
    port = StrictIntegerField(required=False, allow_null=True)
    tags = serializers.ListField(child=StrictCharField(max_length=MAX_TAG_LENGTH), max_length=MAX_TAGS,
                                 required=False)
    metadata = JSONObjectField(required=False)
    weight = StrictIntegerField(required=False)
    checks = serializers.ListField(child=CheckRequestSerializer(), max_length=MAX_CHECKS, required=False,
                                   allow_null=True)


class MaintenanceRequestSerializer(StrictSerializer):
    enable = StrictBooleanField()
    reason = StrictCharField(max_length=200, required=False, allow_blank=True)


class TokenRequestSerializer(StrictSerializer):
    service_name = StrictCharField(max_length=63)
    rotate = StrictBooleanField(required=False, default=False)


class InstanceQuerySerializer(serializers.Serializer):
    """?tag=&status=&index=&wait= of a discovery query: all judged before a blocking query waits."""

    tag = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG_LENGTH, allow_blank=True),
                                max_length=MAX_TAGS, required=False)
    status = serializers.ListField(child=serializers.ChoiceField(choices=Status.values), required=False)
    index = serializers.IntegerField(min_value=0, max_value=MAX_INDEX, required=False, allow_null=True)
    wait = serializers.RegexField(DURATION_PATTERN, max_length=32, required=False, allow_null=True)

    @classmethod
    def from_query(cls, query_params) -> InstanceQuerySerializer:
        def one(name):
            value = query_params.get(name)
            return None if value in (None, "") else value

        data = {"tag": query_params.getlist("tag"), "status": query_params.getlist("status"),
                "index": one("index"), "wait": one("wait")}
        return cls(data=data)


class CheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = HealthCheck
        fields = ["name", "kind", "interval", "timeout", "http_url", "http_expected_status", "tcp_host", "tcp_port",
                  "params", "failures_before_critical", "successes_before_passing", "deregister_critical_after",
                  "status", "output", "last_checked_at"]


class InstanceSerializer(serializers.ModelSerializer):
    checks = CheckSerializer(many=True, read_only=True)

    class Meta:
        model = ServiceInstance
        fields = ["service_id", "name", "host", "port", "tags", "metadata", "weight", "status", "maintenance",
                  "source", "registered_at", "last_heartbeat", "checks"]


class EndpointSerializer(serializers.Serializer):
    """What discovery returns of an instance (services.selectors.Endpoint.as_dict); documentation only."""

    service_id = serializers.CharField()
    name = serializers.CharField()
    host = serializers.CharField()
    port = serializers.IntegerField(allow_null=True)
    address = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    metadata = serializers.DictField()
    weight = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    source = serializers.CharField()


class DiscoverySerializer(serializers.Serializer):
    """A discovery answer: the service's index (also in X-Registry-Index) and its matching instances."""

    name = serializers.CharField()
    index = serializers.IntegerField()
    results = EndpointSerializer(many=True)


class ServiceSummarySerializer(serializers.Serializer):
    """One service of `GET /api/v1/services/`: its instances counted by status (registry.selectors.service_summary)."""

    name = serializers.CharField()
    total = serializers.IntegerField()
    passing = serializers.IntegerField()
    warning = serializers.IntegerField()
    critical = serializers.IntegerField()
    maintenance = serializers.IntegerField()
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    self_preservation = serializers.BooleanField(help_text="Expiry frozen: too many instances lapsed at once.")


class ServiceListSerializer(serializers.Serializer):
    results = ServiceSummarySerializer(many=True)


class EtcdMirrorStateSerializer(serializers.Serializer):
    """Where one etcd mirror stands (registry.selectors.etcd_mirror_states); endpoints and errors are masked."""

    prefix = serializers.CharField()
    state = serializers.ChoiceField(choices=["in sync", "out of sync", "not responding", "stopped"])
    running = serializers.BooleanField()
    in_sync = serializers.BooleanField()
    process = serializers.CharField(help_text="host:pid of the mirror that wrote this state last.")
    hostname = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    lock_holder = serializers.CharField(allow_blank=True,
                                        help_text="host:pid holding the prefix's lock now (the mirroring one); "
                                                  "empty when none does.")
    standbys = serializers.ListField(child=serializers.CharField(),
                                     help_text="host:pid of each mirror waiting to take the prefix over.")
    endpoints = serializers.CharField(help_text="The etcd client URL, its password masked.")
    origin = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    heartbeat_age_seconds = serializers.FloatField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    last_sync_at = serializers.DateTimeField(allow_null=True, help_text="The last reconcile or push that succeeded.")
    last_reconcile_seconds = serializers.FloatField(allow_null=True)
    mirrored_out = serializers.IntegerField(help_text="Instances of ours on a lease in etcd.")
    pulled_in = serializers.IntegerField(help_text="Instances written in etcd by others, mirrored here.")
    puts = serializers.IntegerField()
    pulls = serializers.IntegerField()
    removed_here = serializers.IntegerField()
    reconciles = serializers.IntegerField()
    reconnects = serializers.IntegerField(help_text="Reconciles after the sync was lost.")
    errors = serializers.IntegerField()
    watch_revision = serializers.IntegerField(allow_null=True, help_text="etcd's revision the watch has seen.")
    last_error = serializers.CharField(allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True)


class EtcdMirrorListSerializer(serializers.Serializer):
    results = EtcdMirrorStateSerializer(many=True)
