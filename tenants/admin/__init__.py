"""Admin of tenants: the operator's (all tenants, plans, usage, keys) and the tenant's own API keys and users.

One module per thing registered: `tenants` (Tenant), `plans` (Plan), `usage` (UsageDay), `keys` (ApiKey on both
sites), `users` (the tenant site's User); `base` holds the mixins they share. Importing the package registers
them all (Django's admin autodiscovery imports `tenants.admin`).
"""

from tenants.admin import keys, plans, tenants, usage, users  # noqa: F401  (registers the admins)
from tenants.admin.base import ReadOnlyAdmin, RowQuotaAddMixin, ServiceAddViewMixin  # noqa: F401  (league.admin)
from tenants.admin.keys import OperatorApiKeyAdmin, TenantApiKeyAdmin  # noqa: F401
from tenants.admin.plans import PlanAdmin  # noqa: F401
from tenants.admin.tenants import DomainInline, TenantAdmin  # noqa: F401
from tenants.admin.usage import UsageDayAdmin  # noqa: F401
from tenants.admin.users import TenantUserAdmin, TenantUserQuotaAdmin  # noqa: F401
