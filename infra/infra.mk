# geoblob infrastructure targets. The top-level Makefile includes this file
# (`include infra/infra.mk`); every path here is absolute, so it does not
# depend on the including Makefile's variables.

INFRA_ROOT   := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
INFRA_DIR    := $(INFRA_ROOT)/infra
INFRA_LOCAL  := $(INFRA_ROOT)/.local
INFRA_BUILD  := $(INFRA_ROOT)/build
INFRA_GO     ?= go

# Pinned CDK CLI: aws-cdk@3 rejects the cloud assembly of the v2.220 library.
CDK_CLI_VERSION := 2.1148.1
CDK_CLI_DIR     := $(INFRA_LOCAL)/cdk
CDK             := $(CDK_CLI_DIR)/node_modules/.bin/cdk
CDKLOCAL        := $(CDK_CLI_DIR)/node_modules/.bin/cdklocal
CDK_STAMP       := $(CDK_CLI_DIR)/.installed-$(CDK_CLI_VERSION)

# Extra CDK arguments, e.g. CDK_ARGS='-c primaryBucket=acme-packages -c primaryRegion=eu-central-1'.
CDK_ARGS ?=
# LocalStack (make localstack-up, deploy-local, smoke-local; docs/localstack.md).
LOCALSTACK_ENDPOINT    ?= http://localhost.localstack.cloud:4566
# cdklocal and the smoke test need an S3 endpoint whose host contains ".s3.".
LOCALSTACK_S3_ENDPOINT ?= http://s3.localhost.localstack.cloud:4566
LOCALSTACK_COMPOSE     := docker compose -f $(INFRA_ROOT)/docker-compose.localstack.yml
LOCALSTACK_PRIMARY_REGION   ?= us-east-1
LOCALSTACK_SECONDARY_REGION ?= us-west-2
LOCALSTACK_SECRET      ?= geoblob/registry
# The registry as the functions reach it (inside LocalStack's Lambda containers,
# on the compose network) and as this machine reaches it (the published port).
LOCALSTACK_DATABASE_URL      ?= postgres://geoblob:geoblob@postgres:5432/geoblob
LOCALSTACK_HOST_DATABASE_URL ?= postgres://geoblob:geoblob@127.0.0.1:5433/geoblob
LOCALSTACK_OUTPUTS     := $(INFRA_LOCAL)/localstack/outputs.json
LOCALSTACK_ENV := AWS_ENDPOINT_URL=$(LOCALSTACK_ENDPOINT) AWS_ENDPOINT_URL_S3=$(LOCALSTACK_S3_ENDPOINT) \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=$(LOCALSTACK_SECONDARY_REGION)
INFRA_GEOBLOB := cd $(INFRA_ROOT) && $(INFRA_GO) run ./cmd/geoblob

# The host's architecture: LocalStack runs Lambda images of it, and the local
# stack runs the functions as host processes.
HOST_GOARCH := $(shell $(INFRA_GO) env GOARCH)
HOST_LAMBDA_ARCH := $(if $(filter arm64,$(HOST_GOARCH)),arm64,x86_64)
# Architecture `make lambdas` builds for (arm64 for AWS; make deploy-local
# passes the host's) and where the binaries go.
LAMBDA_GOARCH ?= arm64
LAMBDA_OUT    ?= $(INFRA_BUILD)

# infra/ is its own Go module with `replace github.com/geoblob/geoblob => ../`:
# -mod=mod lets the go command record go.sum entries for dependencies the
# root module gained since infra/go.sum was last tidied, instead of failing.
INFRA_GOFLAGS := $(strip $(GOFLAGS) -mod=mod)

# jsii (the CDK's Node.js runtime behind the Go bindings) keeps its files in
# .local; the CLI runs offline (no notices, telemetry or version check).
INFRA_ENV := GOFLAGS="$(INFRA_GOFLAGS)" \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	JSII_RUNTIME_PACKAGE_CACHE_ROOT=$(INFRA_LOCAL)/jsii \
	TMPDIR=$(INFRA_LOCAL)/tmp
CDK_ENV := $(INFRA_ENV) \
	CDK_DISABLE_CLI_TELEMETRY=true \
	CDK_DISABLE_VERSION_CHECK=true \
	CDK_HOME=$(INFRA_LOCAL)/cdk-home
CDK_FLAGS := --no-notices --no-version-reporting

# The Lambda functions: every functions/<name> holding a main.go.
LAMBDAS := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard $(INFRA_ROOT)/functions/*/main.go)))))

.PHONY: infra-dirs
infra-dirs:
	@mkdir -p $(INFRA_LOCAL)/jsii $(INFRA_LOCAL)/tmp $(INFRA_LOCAL)/cdk-home $(CDK_CLI_DIR)

## Build every function into build/<name>/bootstrap (linux/arm64, provided.al2023).
.PHONY: lambdas
lambdas: ## Build each functions/<name> into build/<name>/bootstrap (arm64, provided.al2023; LAMBDA_GOARCH=amd64 for x86).
	@set -e; cd $(INFRA_ROOT); for f in $(LAMBDAS); do \
		echo "lambda $$f -> $(LAMBDA_OUT)/$$f/bootstrap (linux/$(LAMBDA_GOARCH))"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_GOARCH) $(INFRA_GO) build -tags lambda.norpc -trimpath \
			-o $(LAMBDA_OUT)/$$f/bootstrap ./functions/$$f; \
	done

## Install the pinned CDK CLI (and cdklocal) into .local/cdk with npm.
.PHONY: cdk-install
cdk-install: $(CDK_STAMP) ## Install the pinned CDK CLI aws-cdk@2.1148.1 (+ cdklocal) into .local/cdk with npm ci.

$(CDK_STAMP): $(INFRA_DIR)/cli/package.json $(INFRA_DIR)/cli/package-lock.json | infra-dirs
	cp $(INFRA_DIR)/cli/package.json $(INFRA_DIR)/cli/package-lock.json $(CDK_CLI_DIR)/
	cd $(CDK_CLI_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(CDK_CLI_DIR)/.installed-*
	@touch $@

## Synthesize both stacks into infra/cdk.out, offline.
.PHONY: synth
synth: lambdas cdk-install ## Synthesize both CloudFormation templates into infra/cdk.out (offline; CDK_ARGS='-c key=value').
	cd $(INFRA_DIR) && $(CDK_ENV) $(CDK) synth $(CDK_FLAGS) --quiet -o cdk.out $(CDK_ARGS)
	@ls -l $(INFRA_DIR)/cdk.out/*.template.json

## Synthesize the template for `sam local invoke` into infra/cdk.out.sam (never deploy it).
.PHONY: synth-sam
synth-sam: lambdas cdk-install ## Synthesize infra/cdk.out.sam for `sam local invoke` (placeholder env vars; never deploy it).
	cd $(INFRA_DIR) && $(CDK_ENV) $(CDK) synth $(CDK_FLAGS) --quiet -o cdk.out.sam -c localInvoke=true $(CDK_ARGS)
	@ls -l $(INFRA_DIR)/cdk.out.sam/*.template.json

## Bootstrap CDK in both regions of the real AWS account (once per account).
.PHONY: cdk-bootstrap
cdk-bootstrap: lambdas cdk-install ## Bootstrap CDK in both regions of your AWS account (real AWS, your credentials).
	cd $(INFRA_DIR) && $(CDK_ENV) $(CDK) bootstrap $(CDK_FLAGS) $(CDK_ARGS)

## Deploy both stacks to real AWS with your credentials.
.PHONY: deploy
deploy: lambdas cdk-install ## Deploy both stacks to AWS with your credentials (secondary first; CDK_ARGS='-c key=value').
	cd $(INFRA_DIR) && $(CDK_ENV) $(CDK) deploy $(CDK_FLAGS) --all $(CDK_ARGS)

## LocalStack 4.14 (free edition) and the registry's PostgreSQL, in Docker.
.PHONY: localstack-up
localstack-up: ## Start LocalStack 4.14.0 and the registry's PostgreSQL (docker-compose.localstack.yml; needs Docker).
	$(LOCALSTACK_COMPOSE) up -d --wait

.PHONY: localstack-down
localstack-down: ## Stop LocalStack and its PostgreSQL and delete their state.
	$(LOCALSTACK_COMPOSE) down -v

## Deploy the LocalStack target (-c target=localstack) with cdklocal.
.PHONY: deploy-local
deploy-local: cdk-install ## Deploy the LocalStack target: secret, cdklocal bootstrap + deploy, migrations (needs make localstack-up).
	$(MAKE) lambdas LAMBDA_GOARCH=$(HOST_GOARCH)
	@mkdir -p $(dir $(LOCALSTACK_OUTPUTS))
	$(INFRA_GEOBLOB) localstack secret -endpoint $(LOCALSTACK_ENDPOINT) -region $(LOCALSTACK_SECONDARY_REGION) \
		-name $(LOCALSTACK_SECRET) -database-url '$(LOCALSTACK_DATABASE_URL)'
	cd $(INFRA_DIR) && $(CDK_ENV) $(LOCALSTACK_ENV) $(CDKLOCAL) bootstrap $(CDK_FLAGS) \
		-c target=localstack -c lambdaArchitecture=$(HOST_LAMBDA_ARCH) $(CDK_ARGS) \
		aws://000000000000/$(LOCALSTACK_PRIMARY_REGION) aws://000000000000/$(LOCALSTACK_SECONDARY_REGION)
	cd $(INFRA_DIR) && $(CDK_ENV) $(LOCALSTACK_ENV) $(CDKLOCAL) deploy $(CDK_FLAGS) --all --require-approval never \
		-o cdk.out.local --outputs-file $(LOCALSTACK_OUTPUTS) \
		-c target=localstack -c lambdaArchitecture=$(HOST_LAMBDA_ARCH) -c registrySecretName=$(LOCALSTACK_SECRET) \
		-c primaryRegion=$(LOCALSTACK_PRIMARY_REGION) -c secondaryRegion=$(LOCALSTACK_SECONDARY_REGION) $(CDK_ARGS)
	$(LOCALSTACK_ENV) $(INFRA_GEOBLOB) localstack migrate -endpoint $(LOCALSTACK_ENDPOINT) \
		-region $(LOCALSTACK_SECONDARY_REGION) -outputs $(LOCALSTACK_OUTPUTS)

## Upload, replicate, delete one package file through the deployed LocalStack target.
.PHONY: smoke-local
smoke-local: ## Smoke-test the LocalStack deployment: upload via S3, wait for the copy and the synced row, delete, wait.
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test $(INFRA_GEOBLOB) localstack smoke \
		-s3-endpoint $(LOCALSTACK_S3_ENDPOINT) -outputs $(LOCALSTACK_OUTPUTS) \
		-primary-region $(LOCALSTACK_PRIMARY_REGION) -region $(LOCALSTACK_SECONDARY_REGION) \
		-database-url '$(LOCALSTACK_HOST_DATABASE_URL)'

## Synthesize the LocalStack target offline (what deploy-local deploys).
.PHONY: synth-local
synth-local: cdk-install ## Synthesize the LocalStack target into infra/cdk.out.local (offline, no Docker).
	$(MAKE) lambdas LAMBDA_GOARCH=$(HOST_GOARCH)
	cd $(INFRA_DIR) && $(CDK_ENV) $(CDK) synth $(CDK_FLAGS) --quiet -o cdk.out.local \
		-c target=localstack -c lambdaArchitecture=$(HOST_LAMBDA_ARCH) -c registrySecretName=$(LOCALSTACK_SECRET) $(CDK_ARGS)
	@ls -l $(INFRA_DIR)/cdk.out.local/*.template.json

## Run the infrastructure tests (CDK assertions; the first run takes about a minute).
.PHONY: test-infra
test-infra: infra-dirs ## Run the infra tests (CDK assertions on the synthesized stacks, samconfig check).
	cd $(INFRA_DIR) && $(INFRA_ENV) $(INFRA_GO) vet ./... && $(INFRA_ENV) $(INFRA_GO) test -count=1 ./...

## Rewrite the least-privilege fixtures: the roles' policies from the
## synthesized template, then the functions' S3 calls from the scenario that
## runs each function as a MinIO user with that policy (docs/infrastructure.md).
.PHONY: iam-fixtures
iam-fixtures: infra-dirs ## Rewrite internal/iamcheck/testdata (roles' policies from the template, recorded S3 calls).
	cd $(INFRA_DIR) && $(INFRA_ENV) $(INFRA_GO) test -count=1 -run '^TestIAMPoliciesFixture$$' ./stacks -update-iam
	cd $(INFRA_ROOT) && $(INFRA_GO) test -count=1 -run '^TestScenario$$' ./internal/iamcheck -update

## Remove the synthesized templates and the function binaries.
.PHONY: clean-infra
clean-infra: ## Remove infra/cdk.out, infra/cdk.out.sam and build/.
	rm -rf $(INFRA_DIR)/cdk.out $(INFRA_DIR)/cdk.out.sam $(INFRA_DIR)/cdk.out.local $(INFRA_BUILD)
