import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.local")
django_application = get_wsgi_application()

# Service heartbeats (the registry's hottest call) are answered before Django's
# request stack; everything else goes to Django unchanged. See services/fastpath.py.
from registry.fastpath import HeartbeatFastPath  # noqa: E402  (needs the app registry loaded above)

application = HeartbeatFastPath(django_application)
