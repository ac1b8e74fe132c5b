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
# LocalStack edge endpoint for deploy-local.
LOCALSTACK_ENDPOINT ?= http://localhost.localstack.cloud:4566

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
lambdas: ## Build each functions/<name> into build/<name>/bootstrap (arm64, provided.al2023).
	@set -e; cd $(INFRA_ROOT); for f in $(LAMBDAS); do \
		echo "lambda $$f -> build/$$f/bootstrap"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(INFRA_GO) build -tags lambda.norpc -trimpath \
			-o $(INFRA_BUILD)/$$f/bootstrap ./functions/$$f; \
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

## Deploy both stacks to LocalStack through cdklocal (not exercised in CI).
.PHONY: deploy-local
deploy-local: lambdas cdk-install ## Deploy to a running LocalStack with cdklocal (AWS_ENDPOINT_URL; untested here, see docs/infrastructure.md).
	cd $(INFRA_DIR) && $(CDK_ENV) AWS_ENDPOINT_URL=$(LOCALSTACK_ENDPOINT) AWS_ENDPOINT_URL_S3=$(LOCALSTACK_ENDPOINT) \
		AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
		$(CDKLOCAL) bootstrap $(CDK_FLAGS) -c databaseDeletionProtection=false $(CDK_ARGS)
	cd $(INFRA_DIR) && $(CDK_ENV) AWS_ENDPOINT_URL=$(LOCALSTACK_ENDPOINT) AWS_ENDPOINT_URL_S3=$(LOCALSTACK_ENDPOINT) \
		AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
		$(CDKLOCAL) deploy $(CDK_FLAGS) --all --require-approval never \
		-c createPrimaryBucket=true -c databaseDeletionProtection=false -c natGateways=1 $(CDK_ARGS)

## Run the infrastructure tests (CDK assertions; the first run takes about a minute).
.PHONY: test-infra
test-infra: infra-dirs ## Run the infra tests (CDK assertions on the synthesized stacks, samconfig check).
	cd $(INFRA_DIR) && $(INFRA_ENV) $(INFRA_GO) vet ./... && $(INFRA_ENV) $(INFRA_GO) test -count=1 ./...

## Remove the synthesized templates and the function binaries.
.PHONY: clean-infra
clean-infra: ## Remove infra/cdk.out, infra/cdk.out.sam and build/.
	rm -rf $(INFRA_DIR)/cdk.out $(INFRA_DIR)/cdk.out.sam $(INFRA_BUILD)
