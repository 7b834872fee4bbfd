"""config_changed: sent once per changed key of a watched view, in every process that sees the change.

Receivers get key, old, new and tenant (the schema name of the view, "public"
for the operator view). Values are raw: mask before logging or showing them.
"""

from django.dispatch import Signal

config_changed = Signal()

# Sent inside the writing transaction when keys become secret (a schema marked secret): keys=[...].
# Stores of history outside this app (the audit log) redact what they kept of those keys in clear.
secret_keys_declared = Signal()
