# rootmail: the commands a developer and CI use. `make help` lists them.
CARGO ?= cargo
STATE ?= .rootmail/demo

.PHONY: help demo test fmt lint build bench clean

help:
	@echo "make demo   run the local pipeline on the sample mailbox (no AWS needed)"
	@echo "make test   formatting, clippy -D warnings, and every test (starts moto for the AWS tests)"
	@echo "make bench  criterion benchmarks of triage over the corpus"
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
	scripts/setup-test-env
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) build --workspace --locked
	scripts/with-moto scripts/with-rt $(CARGO) test --workspace --locked

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p rootmail-tests --bench triage

clean:
	$(CARGO) clean
	rm -rf .rootmail .venv
