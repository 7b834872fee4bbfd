# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install browser pgbouncer run dev test bench bench-peers lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# The production server (gunicorn, WhiteNoise); `make dev` is runserver with autoreload.
run: install
	bin/run

dev: install
	bin/run dev

# The admin's browser tests drive Debian's Chromium through its ChromeDriver (never a downloaded browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "Installing Debian's chromium and chromium-driver for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; }

# The PgBouncer tests and CI's pass through a pooler use Debian's pgbouncer (transaction pooling, tests/pgbouncer.py).
pgbouncer:
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { \
	  echo "Installing Debian's pgbouncer for the connection-pooler tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q pgbouncer >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q pgbouncer >/dev/null; }; }

test: install browser pgbouncer
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

# Every script under bench/ except the shared helpers and the reference cluster's settings.
BENCHES := $(filter-out bench/common.py bench/serving.py bench/stock_django_q_settings.py bench/__init__.py,$(wildcard bench/*.py))

bench: install
	@for script in $(BENCHES); do echo "== $$script"; $(PY) $$script || exit 1; done

# The task layer's peers (Celery on Redis, Procrastinate on PostgreSQL) for bench/tasks.py, in an environment of
# their own: never the product's dependencies. bench/tasks.py measures them when .venv-peers exists.
PEERS_VENV := .venv-peers

bench-peers: $(PEERS_VENV)/.installed

$(PEERS_VENV)/.installed: bench/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -r bench/peers/requirements.txt
	touch $@
