# Entry points of the revops event bus. Each target is a thin call to a script in
# deploy/, so the scripts stay usable (and readable) on their own.
# Add targets below; keep them .PHONY and one line where you can.

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: bootstrap
bootstrap: ## install uv, postgresql, docker-compose if missing, then uv sync
	deploy/local/bootstrap.sh

.PHONY: infra
infra: ## start Kafka (127.0.0.1:9092) and Postgres (127.0.0.1:5432), create the topics; BROKERS=3 also starts a three-node Kafka cluster on 9192-9194
	deploy/local/infra.sh up --brokers $(or $(BROKERS),1)

.PHONY: infra-down
infra-down: ## stop Kafka and Postgres (BROKERS=3: the three-node cluster too)
	deploy/local/infra.sh down --brokers $(or $(BROKERS),1)

.PHONY: infra-status
infra-status: ## exit 0 when Kafka and Postgres both answer
	deploy/local/infra.sh status

.PHONY: compose-check
compose-check: ## validate docker-compose.yml (no container engine needed)
	uv run --frozen pytest -q tests/test_compose.py

.PHONY: helm-check
helm-check: ## lint and render deploy/helm/revops, validate every object (no cluster needed)
	uv run --frozen pytest -q tests/test_helm_chart.py

.PHONY: compose-test
compose-test: ## build every image and run docker-compose.yml for real (installs podman if no engine answers)
	uv run --frozen pytest -q tests/test_compose_run.py

.PHONY: compose-engine
compose-engine: ## start a Docker-API engine (the machine's, else podman) and print its DOCKER_HOST
	deploy/compose/engine.sh up
	deploy/compose/engine.sh env

.PHONY: compose-images
compose-images: ## build Kafka, Postgres and Python base images from Debian's packages (no registry)
	deploy/compose/base-images.sh

.PHONY: up
up: ## start Kafka, Postgres, the four services and the console in the background, then run the demo
	deploy/local/infra.sh up
	deploy/local/services.sh start
	uv run --frozen python deploy/local/demo.py

.PHONY: down
down: ## stop the console and the four services, then Kafka and Postgres
	deploy/local/services.sh stop
	deploy/local/infra.sh down

.PHONY: status
status: ## what runs
	-deploy/local/infra.sh status
	-deploy/local/services.sh status

.PHONY: demo
demo: ## send the demo's webhooks to the running system and print what each service made of them
	uv run --frozen python deploy/local/demo.py

.PHONY: backfill-demo
backfill-demo: ## backfill Salesforce and HubSpot from a local fake of their APIs into Kafka
	deploy/local/infra.sh up
	uv run --frozen python deploy/local/backfill_demo.py

.PHONY: lint
lint: ## ruff (lint and format) and mypy (strict)
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy

.PHONY: test-python
test-python: ## the test suite on another Python this machine has (PY=3.13; ARGS=pytest arguments)
	deploy/local/test-python.sh $(or $(PY),3.13) $(ARGS)

# make unit: Kafka and Postgres point at a port where nothing listens, so a test that needs
# them without asking for the `infra` fixture fails here instead of passing by luck.
# REVOPS_UNIT=1 makes a test that starts a program without the `processes` mark fail (conftest.py).
NOWHERE := 127.0.0.1:9
UNIT_ENV := REVOPS_UNIT=1 REVOPS_TESTCONTAINERS=off KAFKA_BOOTSTRAP_SERVERS=$(NOWHERE) \
	$(foreach r,REVOPS ROUTER ATTRIBUTION RENEWALS,TEST_$(r)_DATABASE_URL=postgresql+asyncpg://nobody@$(NOWHERE)/none)

.PHONY: unit
unit: ## every test that needs neither Kafka nor Postgres nor starts a process, a tenth of the property examples (seconds; ARGS="-n auto --dist loadfile" on idle cores)
	$(UNIT_ENV) uv run --frozen pytest -q -m "not infra and not processes" \
		--hypothesis-profile=fast -p no:schemathesis $(ARGS)

.PHONY: fmt
fmt: ## format the code and apply ruff's safe fixes
	uv run --frozen ruff format .
	uv run --frozen ruff check --fix .

.PHONY: test
test: ## install and start what is needed, then lint, types and the whole test suite
	deploy/local/infra.sh up
	$(MAKE) --no-print-directory lint
	uv run --frozen pytest
