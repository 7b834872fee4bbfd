"""The tenant API's response cache for league reads.

A GET of a league endpoint is answered from the cache when the same tenant
asked the same question of the same data: the key carries the schema (twice:
in the key itself and through django_tenants.cache.make_key), the schema's
data generation (league.0004: it moves with every committed write to league
data, whoever writes), the view, its URL arguments, the whole query string
(so the page and the page size), the host and scheme (pagination links name
them), and the configuration that shapes the answer (page size, default
season, scoring). Nothing is ever deleted to invalidate: a write moves the
generation and later reads use new keys, in every process, whatever the cache
backend; old entries age out after cache.ttl_seconds. Only 200s are cached.
Responses carry X-Cache: HIT or MISS.

The cache is an optimisation: if the cache backend fails, the read is
computed as if it were a miss.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging

from django.core.cache import cache
from django.db import connection
from rest_framework.response import Response

from configuration import keys
from league import selectors

logger = logging.getLogger("league.cache")


def response_key(request, *, view_name: str, view_kwargs: dict) -> str:
    schema = connection.schema_name
    scoring = selectors.scoring_current()
    material = json.dumps(
        {
            "generation": selectors.data_generation(),
            "view": view_name,
            "kwargs": view_kwargs,
            "query": sorted(request.query_params.lists()),
            "host": request.get_host(),
            "secure": request.is_secure(),
            "page_size": keys.api_page_size(),
            "default_season": keys.reports_default_season(),
            "scoring": scoring.as_dict(),
        },
        sort_keys=True, default=str,
    )
    return f"league-api:{schema}:{hashlib.sha256(material.encode()).hexdigest()}"


def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception:  # noqa: BLE001 - any backend failure is a miss, never an error for the client
        logger.warning("response cache unavailable for a read", exc_info=True)
        return None


def _cache_set(key: str, value, timeout: int) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except Exception:  # noqa: BLE001
        logger.warning("response cache unavailable for a write", exc_info=True)


def cached_read(handler):
    """Decorate a league view's get(): answer from the tenant's response cache, or compute and store."""

    @functools.wraps(handler)
    def get(self, request, *args, **kwargs):
        key = response_key(request, view_name=f"{type(self).__module__}.{type(self).__qualname__}",
                           view_kwargs=kwargs)
        cached = _cache_get(key)
        if cached is not None:
            response = Response(cached)
            response["X-Cache"] = "HIT"
            return response
        response = handler(self, request, *args, **kwargs)
        if response.status_code == 200:
            _cache_set(key, response.data, keys.cache_ttl_seconds())
        response["X-Cache"] = "MISS"
        return response

    return get
