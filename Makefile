# Lotse: every target installs what it needs (uv in .tools/, the locked packages in .venv/).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV := .tools/bin/uv
PY := .venv/bin/python

.PHONY: help demo up test unit security chaos bench bench-outbox bench-notifications bench-inbox bench-placement bench-alerts bench-portal bench-observability docs lint format clean rabbitmq chromium k8s-check compose-check

help:
	@echo "make demo   start RabbitMQ if needed, a local database and SMTP sink, the four"
	@echo "            services as processes; run the main flow; print the caseworker's inbox"
	@echo "make up     the same stack, kept running until Ctrl-C"
	@echo "make unit   the fast tier: rules, access, parsing; no broker, no database"
	@echo "make test   the whole test suite against real RabbitMQ, SecantusDB and SMTP"
	@echo "make security  every endpoint without a token, with a wrong role, across districts;"
	@echo "              partner broker permissions, HTTP and AMQP fuzzing, erasure scan"
	@echo "make chaos  kill, restart and poison things while 2,000 events flow; prints a summary"
	@echo "make bench         main flow: throughput, latency, I/O floor, memory, scale-out, profile"
	@echo "make bench-outbox  latency the transactional outbox adds per event"
	@echo "make bench-notifications  events -> inbox row + accepted email per second, peak RSS"
	@echo "make bench-inbox   the inbox page with 5,000 notifications: pages, filters, counts"
	@echo "make bench-placement  suggestion search at 1k/10k/100k openings; re-matching vs naive"
	@echo "make bench-alerts  a district's week in simulated time, before (ac679f4) and after"
	@echo "                   the alert policy: emails, inbox items per caseworker and day"
	@echo "make bench-observability  the flow with metrics and tracing off, metrics on, both on"
	@echo "make bench-portal  the portal at 4,000 people: caseload of 150, a file, the figures;"
	@echo "                   server time p50/p95 and the service calls per page"
	@echo "make k8s-check  render deploy/k8s, validate it offline, cross-check it, run checkov"
	@echo "make lint   ruff (lint + format check) and mypy"
	@echo "make docs   regenerate the partners' AsyncAPI document and page (docs/asyncapi/)"
	@echo "make compose-check  docker-compose built and run for real (engine, stand-ins, 3 replicas)"

$(UV):
	@python3 -m venv .tools
	@.tools/bin/pip install --quiet "uv>=0.13,<0.14"

.venv/.synced: $(UV) pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml deploy/devstack/pyproject.toml
	@$(UV) sync --frozen --quiet
	@touch $@

rabbitmq:
	@deploy/ensure-rabbitmq.sh

chromium:
	@deploy/ensure-chromium.sh

# axe-core from the npm registry: the browser tests inject it to check each page's accessibility
AXE := .tools/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@npm install --silent --no-audit --no-fund --prefix .tools/axe axe-core@4.11.4

demo: .venv/.synced rabbitmq
	@$(PY) -m lotse_devstack demo

up: .venv/.synced rabbitmq
	@$(PY) -m lotse_devstack up

# the AsyncAPI initiative's parser: a contract test validates the partners' document with it
ASYNCAPI_PARSER := .tools/asyncapi/node_modules/@asyncapi/parser/package.json
$(ASYNCAPI_PARSER):
	@npm install --silent --no-audit --no-fund --prefix .tools/asyncapi @asyncapi/parser@3.6.0

# kubernetes-validate and checkov for the Kubernetes manifests' test (tests/contract/test_k8s.py),
# in a venv of their own: checkov's pins would fight uv.lock. Locked with hashes in deploy/k8s/tools.txt
K8S_TOOLS := .tools/k8s/.installed
$(K8S_TOOLS): deploy/k8s/tools.txt | $(UV)
	@$(UV) venv --quiet --allow-existing --python python3 .tools/k8s
	@$(UV) pip install --quiet --python .tools/k8s/bin/python --require-hashes -r deploy/k8s/tools.txt
	@touch $@

# render the Kubernetes manifests, validate them offline, cross-check them, run checkov (~15 s)
k8s-check: .venv/.synced $(K8S_TOOLS)
	@$(PY) -m pytest -q -p no:cacheprovider tests/contract/test_k8s.py

test: .venv/.synced rabbitmq chromium $(AXE) $(ASYNCAPI_PARSER) $(K8S_TOOLS)
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

security: .venv/.synced rabbitmq
	@rm -f tests/artifacts/*.json
	@# fuzz sizes: LOTSE_FUZZ_EXAMPLES (150 per operation, role and mode), LOTSE_FUZZ_MESSAGES (1000)
	@LOTSE_FUZZ_EXAMPLES=$${LOTSE_FUZZ_EXAMPLES:-150} $(PY) -m pytest -q -p no:cacheprovider --timeout=1800 \
		tests/unit/test_auth.py tests/integration/test_security.py tests/security
	@$(PY) -m tests.security_summary

chaos: .venv/.synced rabbitmq
	@$(PY) -m lotse_devstack chaos --events $${CHAOS_EVENTS:-2000}

bench: .venv/.synced rabbitmq
	@$(PY) -m bench.pipeline

bench-outbox: .venv/.synced rabbitmq
	@$(PY) -m bench.outbox_latency

bench-notifications: .venv/.synced rabbitmq
	@$(PY) -m bench.notifications

bench-inbox: .venv/.synced rabbitmq
	@$(PY) -m bench.inbox

bench-placement: .venv/.synced
	@$(PY) -m bench.placement

bench-alerts: .venv/.synced rabbitmq
	@# sizes: BENCH_ALERTS_PEOPLE (4000), _CASEWORKERS (27), _OPENINGS (300), _STOCK (200), ...
	@$(PY) -m bench.alerts

bench-observability: .venv/.synced rabbitmq
	@# sizes: BENCH_OBS_N (800 events per configuration), BENCH_OBS_ROUNDS (2)
	@$(PY) -m bench.observability

bench-portal: .venv/.synced rabbitmq
	@# sizes: BENCH_PORTAL_PEOPLE (4000), _CASELOAD (150), _REQUESTS (200), _OPENINGS (300), ...
	@$(PY) -m bench.portal

# the fast tier: rules, access, parsing, mappings; no broker, no database (~25 s)
unit: .venv/.synced
	@$(PY) -m pytest -q -p no:cacheprovider tests/unit

# the partners' AsyncAPI document and page (docs/asyncapi), from the contracts
docs: .venv/.synced
	@$(PY) -m lotse_shared.ops.partner_contract docs/asyncapi

lint: .venv/.synced
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy -p bench -p lotse_shared -p lotse_intake -p lotse_courses -p lotse_placement -p lotse_notifications -p lotse_portal -p lotse_devstack -p tests

format: .venv/.synced
	@.venv/bin/ruff check --fix .
	@.venv/bin/ruff format .

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache

# docker-compose for real: engine (Debian's, as root), images, stand-ins, the flow, down -v
# (docs/deploy.md). COMPOSE_CHECK_ARGS=--skip-without-engine: exit 0 where none can run.
.PHONY: compose-check
compose-check: .venv/.synced
	@$(PY) -m lotse_devstack.compose_check $(COMPOSE_CHECK_ARGS)
