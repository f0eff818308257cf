# rootmail: the commands a developer and CI use. `make help` lists them.
CARGO ?= cargo
STATE ?= .rootmail/demo

.PHONY: help demo test fmt lint build bench soak clean

help:
	@echo "make demo   run the local pipeline on the sample mailbox (no AWS needed)"
	@echo "make test   formatting, clippy -D warnings, and every test (starts moto for the AWS tests)"
	@echo "make bench  benchmarks: triage (corpus, a 40 MiB mail; its instructions against a parse's), mail-ingest against moto, its peak memory, the bootstraps' sizes"
	@echo "make fuzz   the cargo-fuzz targets (triage, events), FUZZ_SECONDS=300 each; a crash fails it"
	@echo "make soak   5,000 generated mails through the AWS pipeline (moto, a Zendesk fake at 700 requests/minute, 10% 5xx): ~30 min, SOAK_MESSAGES=N for fewer"
	@echo "make lint-infra  cfn-lint and checkov on infra/template.yaml (part of make test)"
	@echo "make backfill  100,000 generated messages through an optimised rootmail run, with messages/s"
	@echo "make profile-triage  perf profile of triage on the corpus (where its time goes)"
	@echo "make profile-backfill  perf profile of rootmail run on generated mail (each thread's share)"
	@echo "make build  release builds of every Lambda (cargo lambda, ARCH=x86_64|arm64)"
	@echo "make package  the builds zipped, with each bootstrap's size"
	@echo "make deploy  a guided sam deploy of infra/template.yaml"
	@echo "make fmt    format the code"

# The sample mailbox through the whole pipeline, twice (the second run creates
# nothing: the ledger makes it idempotent), then the tickets it made.
demo:
	@$(CARGO) build -q -p rootmail-cli
	@rm -rf $(STATE)
	@echo "== Nine sample mails through the local pipeline (state in $(STATE))"
	@$(CARGO) run -q -p rootmail-cli -- run --state $(STATE) --accounts examples/accounts.csv examples/mailbox
	@echo
	@echo "== The same mail again: the ledger makes it a no-op"
	@$(CARGO) run -q -p rootmail-cli -- run --state $(STATE) --accounts examples/accounts.csv examples/mailbox | tail -n 2
	@echo
	@echo "== The tickets (rootmail tickets --state $(STATE) list)"
	@$(CARGO) run -q -p rootmail-cli -- tickets --state $(STATE) list
	@echo
	@echo "== Ticket #1 with its comment (rootmail tickets --state $(STATE) show 1)"
	@$(CARGO) run -q -p rootmail-cli -- tickets --state $(STATE) show 1

# The AWS tests run against moto (local AWS) in .venv, started for the run only.
test:
	scripts/install-prerequisites
	scripts/setup-test-env
	$(MAKE) --no-print-directory lint-infra
	scripts/lint-statemachines
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	# Each function alone, with only its own features, as `make build` deploys it.
	set -e; for f in $(FUNCTIONS); do $(CARGO) clippy -p $$f --all-targets --locked -- -D warnings; done
	# --tests: the binaries get the features the tests resolve (dev-dependencies
	# included), so `cargo test` reuses every crate this built instead of
	# compiling the SDK again with other features.
	$(CARGO) build --workspace --locked --bins --tests
	# Test threads get 8 MiB of stack from .cargo/config.toml (why: there).
	scripts/with-moto scripts/with-rt $(CARGO) test --workspace --locked

fmt:
	$(CARGO) fmt --all

# Each number beside a baseline measured in the same run: triage (no AWS), then
# against moto mail-ingest end to end and the peak memory of its release build
# on 40 MiB mail, then the summary (scripts/bench-summary). Built first, all
# at once, so no build runs between the measurements.
BENCHES := --bench triage --bench ingest --bench peak_memory --bench cold_start

bench:
	$(CARGO) bench -p rootmail-tests $(BENCHES) --no-run
	$(CARGO) bench -p rootmail-tests --bench triage
	$(CARGO) build -q --profile cli-release -p rootmail-local --example profile_triage
	mkdir -p "$(RELEASE_TARGET_DIR)"
	scripts/bench-instructions $${CARGO_TARGET_DIR:-target}/cli-release/examples/profile_triage tests/corpus > "$(RELEASE_TARGET_DIR)/instructions.txt"
	scripts/setup-test-env
	scripts/with-moto $(CARGO) bench -p rootmail-tests --bench ingest --bench peak_memory
	RELEASE_TARGET_DIR="$(RELEASE_TARGET_DIR)" scripts/bootstrap-sizes > "$(RELEASE_TARGET_DIR)/bootstrap-sizes.txt"
	BOOTSTRAPS="$(RELEASE_TARGET_DIR)/release" BASELINE_BOOTSTRAPS="$(RELEASE_TARGET_DIR)/baseline" \
		scripts/with-moto $(CARGO) bench -p rootmail-tests --bench cold_start
	scripts/bench-summary
	cat "$(RELEASE_TARGET_DIR)/instructions.txt" "$(RELEASE_TARGET_DIR)/bootstrap-sizes.txt"

# Fuzzing on stable Rust (no sanitizer): the cargo-fuzz targets in fuzz/, run
# side by side for FUZZ_SECONDS each. cargo-fuzz, the build and the corpus a run
# grows live under /var/tmp; crashing inputs are kept in fuzz/corpus/<target>/.
FUZZ_SECONDS ?= 300

.PHONY: fuzz

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

# The soak (tests/tests/it/soak.rs, not part of `make test`): S3 -> SQS ->
# mail-ingest -> FIFO -> ticket-writer against moto and the stateful Zendesk
# fake, then the reconciliation table and the throughput. SOAK_MESSAGES (default
# 5000) sets the number of objects; the writers keep to 700 requests a minute.
soak:
	scripts/setup-test-env
	scripts/with-moto $(CARGO) test -p rootmail-tests --test it -- --ignored --exact soak::soak --nocapture

# A backfill of 100,000 generated messages (BACKFILL_MESSAGES=N for another
# number) through `rootmail run` built optimised, beside a baseline of one
# sync per message in the same run (tests/tests/it/backfill.rs).
# Absolute: the test runs in tests/, not here.
BACKFILL_BIN = $${CARGO_TARGET_DIR:-$(CURDIR)/target}/cli-release/rootmail

.PHONY: backfill
backfill:
	$(CARGO) build --profile cli-release -p rootmail-cli
	ROOTMAIL_BIN=$(BACKFILL_BIN) $(CARGO) test -p rootmail-tests --test it -- --ignored --exact backfill::a_hundred_thousand_messages --nocapture

# Where a backfill spends its time: the generated mailbox (BACKFILL_MESSAGES,
# default 20,000) through the optimised `rootmail run` under `perf`, then the
# share of each thread (the lowest id, the main thread, is the in-order
# writer) and the top symbols.
PROFILE_DIR ?= /var/tmp/rootmail-profile-backfill

.PHONY: profile-backfill
profile-backfill:
	$(CARGO) build --profile cli-release -p rootmail-cli
	$(CARGO) run -q -p rootmail-tests --example backfill_mailbox $${BACKFILL_MESSAGES:-20000} $(PROFILE_DIR)
	rm -rf $(PROFILE_DIR)/state
	perf record -F 500 -g -o /tmp/rootmail-backfill.perf $(BACKFILL_BIN) run --state $(PROFILE_DIR)/state --accounts $(PROFILE_DIR)/accounts.csv $(PROFILE_DIR)/backfill.mbox > /dev/null
	perf report -i /tmp/rootmail-backfill.perf -s pid --stdio -g none | grep rootmail
	perf report -i /tmp/rootmail-backfill.perf --no-children -s dso,sym --stdio -g none --percent-limit 1 | grep -v '^#'

# Where triage spends its time: the corpus triaged on one core under `perf`
# (from Debian's linux-perf), with line tables in the optimised build.
.PHONY: profile-triage
profile-triage:
	CARGO_PROFILE_CLI_RELEASE_DEBUG=line-tables-only $(CARGO) build --profile cli-release -p rootmail-local --example profile_triage
	perf record --call-graph dwarf -F 500 -o /tmp/rootmail-perf.data $${CARGO_TARGET_DIR:-target}/cli-release/examples/profile_triage tests/corpus 30
	perf report -i /tmp/rootmail-perf.data --children --percent-limit 2 --stdio -g none | grep rootmail_domain | grep -v inlined

clean:
	$(CARGO) clean
	rm -rf .rootmail .venv .venv-infra .venv-build .venv-sam .tools

# ---------------------------------------------------------------- deployment
# infra/template.yaml: checked offline by `make lint-infra` (part of `make test`),
# built by `make build`, sized by `make package`, deployed by `make deploy`
# (README, "Deploying to AWS"). Release builds use their own target directory,
# so they never wait for or invalidate the debug builds the tests use. Each
# function is built from its own directory, as `sam build` does, so the deploy
# reuses this build. ARCH is the Lambda architecture: arm64 needs rustup's
# aarch64-unknown-linux-gnu standard library; `make deploy` passes ARCH to the
# template's Architecture parameter.
ARCH ?= x86_64
RELEASE_TARGET_DIR ?= /var/tmp/rootmail-release-target
FUNCTIONS := $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml))
# cargo-lambda finds zig through the first python3 on PATH: the build venv's.
LAMBDA_ENV := PATH="$(CURDIR)/.venv-build/bin:$$PATH" CARGO_TARGET_DIR="$(RELEASE_TARGET_DIR)"
# The same command `sam build` runs (cargo-lambda's default target is x86_64).
LAMBDA_BUILD = $(CARGO) lambda build --release $(if $(filter arm64,$(ARCH)),--arm64)

.PHONY: lint-infra build package deploy

lint-infra:
	scripts/lint-infra

build:
	@case "$(ARCH)" in x86_64|arm64) ;; *) echo "ARCH must be x86_64 or arm64, not $(ARCH)" >&2; exit 2 ;; esac
	scripts/setup-infra-env build
	set -e; for f in $(FUNCTIONS); do \
		echo "== $$f ($(ARCH), release)"; \
		(cd functions/$$f && $(LAMBDA_ENV) $(LAMBDA_BUILD)); \
	done

# The bootstraps and the zip files Lambda receives, with their sizes.
package: build
	set -e; for f in $(FUNCTIONS); do \
		(cd functions/$$f && $(LAMBDA_ENV) $(LAMBDA_BUILD) --output-format zip --quiet); \
	done
	@for f in $(FUNCTIONS); do \
		dir="$(RELEASE_TARGET_DIR)/lambda/$$f"; \
		printf '%-16s bootstrap %9s bytes   bootstrap.zip %9s bytes   (%s)\n' "$$f" \
			"$$(stat -c %s "$$dir/bootstrap")" "$$(stat -c %s "$$dir/bootstrap.zip")" "$$dir"; \
	done

# A guided `sam deploy` into the account your AWS settings name.
deploy:
	ARCH="$(ARCH)" RELEASE_TARGET_DIR="$(RELEASE_TARGET_DIR)" scripts/deploy-infra
