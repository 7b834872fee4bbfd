"""Instances of services: where they run, their tags and metadata, their status, where they were registered."""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry.models.validation import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    RESERVED_SERVICE_NAMES,
    UNROUTABLE_HOSTS,
    host_validator,
    metadata_problem,
    no_nul,
    service_id_validator,
    service_name_validator,
)
from registry.status import Status


class Source(models.TextChoices):
    COURTSIDE = "courtside", "Courtside"
    CONSUL = "consul", "Consul"
    ETCD = "etcd", "etcd"


class ServiceInstance(models.Model):
    """One running instance of a service, at a host and port, with its own health."""

    service_id = models.CharField(
        "service id", max_length=128, unique=True, validators=[service_id_validator],
        help_text="Unique across the registry; re-registering the same id updates the instance.",
    )
    name = models.CharField(
        "service name", max_length=63, validators=[service_name_validator], db_index=True,
        help_text="Discovery looks instances up by this name.",
    )
    host = models.CharField("host", max_length=253, validators=[host_validator],
                            help_text="Host name or IP address clients connect to.")
    port = models.PositiveIntegerField(
        "port", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="1 to 65535. Empty only for Courtside's own task-cluster processes, which listen on no port.",
    )
    tags = ArrayField(
        models.CharField(max_length=MAX_TAG_LENGTH, validators=[no_nul]), default=list, blank=True, verbose_name="tags",
        help_text="Free labels such as api or production; discovery filters on all given tags.",
    )
    metadata = models.JSONField("metadata", default=dict, blank=True, help_text="Free key/value data.")
    weight = models.PositiveIntegerField(
        "weight", default=1, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Share of round-robin traffic relative to the other instances (1 to 100).",
    )
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.CRITICAL, db_index=True,
        help_text="Worst of the checks' statuses, or maintenance. New instances start critical, as in Consul.",
    )
    maintenance = models.BooleanField(
        "in maintenance", default=False, help_text="Taken out of discovery by an operator; checks keep running."
    )
    source = models.CharField(
        "source", max_length=16, choices=Source.choices, default=Source.COURTSIDE,
        help_text="Where the instance was registered: here, or pulled from Consul's catalog.",
    )
    registered_at = models.DateTimeField("registered at", auto_now_add=True)
    last_heartbeat = models.DateTimeField(
        "last heartbeat", null=True, blank=True, help_text="Last heartbeat received; TTL checks expire from it."
    )
    updated_at = models.DateTimeField("updated at", auto_now=True)

    class Meta:
        verbose_name = "service instance"
        ordering = ["name", "service_id"]
        indexes = [
            models.Index(fields=["name", "status"], name="services_instance_name_status"),
            GinIndex(fields=["tags"], name="services_instance_tags_gin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port__isnull=True) | models.Q(port__gte=1, port__lte=65535),
                name="services_instance_port",
            ),
            models.CheckConstraint(condition=models.Q(weight__gte=1, weight__lte=100), name="services_instance_weight"),
            models.CheckConstraint(condition=~models.Q(name=""), name="services_instance_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name}/{self.service_id}"

    def clean(self):
        if self.name in RESERVED_SERVICE_NAMES:
            raise ValidationError({"name": f"{self.name!r} is reserved by the registry's API."})
        if len(self.tags or []) > MAX_TAGS:
            raise ValidationError({"tags": f"At most {MAX_TAGS} tags."})
        if any(not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH for tag in self.tags or []):
            raise ValidationError({"tags": f"Tags are 1 to {MAX_TAG_LENGTH} characters."})
        if self.host in UNROUTABLE_HOSTS:
            raise ValidationError({"host": f"{self.host} is no address a client can connect to."})
        problem = metadata_problem(self.metadata)
        if problem:
            raise ValidationError({"metadata": problem})

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host
