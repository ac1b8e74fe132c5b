# geoblob — `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

GO            ?= go
LOCAL         := $(CURDIR)/.local
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO         := $(LOCAL)/bin/minio
RCLONE_VERSION := v1.76.0
RCLONE        := $(LOCAL)/bin/rclone
# The AWS Lambda Runtime Interface Emulator: the local stack runs each
# function binary under its own emulator process (no tagged version is served).
RIE_VERSION   := v0.0.0-20261030222936-bef5c4ba774d
RIE           := $(LOCAL)/bin/aws-lambda-rie
# Function binaries for this machine (make lambdas LAMBDA_OUT=...), run by make up/demo.
LOCAL_LAMBDAS := $(LOCAL)/lambdas
GEOBLOB       := $(GO) run ./cmd/geoblob
export GEOBLOB_MINIO_BIN := $(MINIO)
export GEOBLOB_RIE_BIN := $(RIE)

.PHONY: help
help: ## List the targets with one line each.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Download the Go modules.
	$(GO) mod download

.PHONY: tools
tools: $(MINIO) $(RIE) ## Install the pinned MinIO server and Lambda Runtime Interface Emulator into .local/bin (first build ~4 min).

$(MINIO):
	@echo "building MinIO $(MINIO_VERSION) into $(LOCAL)/bin (one-time, a few minutes)..."
	GOBIN=$(LOCAL)/bin GOFLAGS=-mod=mod $(GO) install github.com/minio/minio@$(MINIO_VERSION)

$(RIE):
	@echo "building aws-lambda-rie $(RIE_VERSION) into $(LOCAL)/bin..."
	GOBIN=$(LOCAL)/bin GOFLAGS=-mod=mod $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

.PHONY: local-lambdas
local-lambdas: ## Build the function binaries for this machine into .local/lambdas (what make up/demo run).
	$(MAKE) lambdas LAMBDA_GOARCH=$(HOST_GOARCH) LAMBDA_OUT=$(LOCAL_LAMBDAS)

$(RCLONE):
	@echo "building rclone $(RCLONE_VERSION) into $(LOCAL)/bin (baseline for the backfill benchmark)..."
	GOBIN=$(LOCAL)/bin GOFLAGS=-mod=mod $(GO) install github.com/rclone/rclone@$(RCLONE_VERSION)

.PHONY: up
up: tools local-lambdas ## Start the local stack (PostgreSQL, two MinIO regions, event delivery to the function binaries under aws-lambda-rie).
	$(GEOBLOB) up -functions $(LOCAL_LAMBDAS)

.PHONY: down
down: ## Stop the local stack.
	$(GEOBLOB) down

.PHONY: demo
demo: tools local-lambdas ## Start the local stack, upload sample packages of every type, show them replicated.
	$(GEOBLOB) demo -functions $(LOCAL_LAMBDAS)

.PHONY: status
status: ## Per-type replication table of the running local stack.
	$(GEOBLOB) status

.PHONY: console
console: ## Operator console of the running local stack on 127.0.0.1 (the daemon also serves one, see `make up`).
	$(GEOBLOB) console $(ARGS)

.PHONY: backfill
backfill: ## One backfill pass on the running local stack (progress bar + summary); ARGS="-until-quiet".
	$(GEOBLOB) backfill $(ARGS)

.PHONY: verify
verify: ## Verify the replicated files of the running local stack; MODE=fast uses stored checksums.
	$(GEOBLOB) verify $(if $(MODE),-mode $(MODE))

.PHONY: check
check: ## Health check of the running local stack (gitlab:geo:check): one line per check with a fix hint.
	$(GEOBLOB) check

.PHONY: test
test: tools ## Run the whole test suite (gofmt, vet, unit, integration, end-to-end, infra).
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed (make fmt): $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	$(MAKE) test-infra

FUZZTIME ?= 8s
.PHONY: fuzz
fuzz: ## Fuzz every Fuzz* target for FUZZTIME each (plain `go test` replays their testdata/fuzz corpora).
	@set -eo pipefail; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' shared internal cmd); do \
	  for n in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$n (./$$(dirname $$f), $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) | tail -n 3; \
	  done; \
	done

.PHONY: test-short
test-short: ## Fast tests only (no MinIO processes, no >100 MiB objects).
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: tools $(RCLONE) ## Run the Go benchmarks (figures go to docs/BENCHMARKS.md).
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: clean
clean: down ## Stop the stack and remove local state (.local/stack, .local/lambdas, build/).
	rm -rf $(LOCAL)/stack $(LOCAL_LAMBDAS) build

# Infrastructure (CDK for Go in infra/): lambdas, synth, deploy, deploy-local, test-infra, ...
include infra/infra.mk
