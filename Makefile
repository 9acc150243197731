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
infra: ## start Kafka (127.0.0.1:9092) and Postgres (127.0.0.1:5432), create the topics
	deploy/local/infra.sh up

.PHONY: infra-down
infra-down: ## stop Kafka and Postgres
	deploy/local/infra.sh down

.PHONY: infra-status
infra-status: ## exit 0 when Kafka and Postgres both answer
	deploy/local/infra.sh status

.PHONY: compose-check
compose-check: ## validate docker-compose.yml (no container engine needed)
	uv run --frozen pytest -q tests/test_compose.py
