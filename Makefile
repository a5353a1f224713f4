# taxi-mlops — the two commands are `make dev` and `make test`.
GO        ?= go
TEMPORAL  := github.com/temporalio/cli/cmd/temporal@v1.5.1
GOBIN_DIR := $(shell $(GO) env GOBIN)
ifeq ($(GOBIN_DIR),)
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
endif

.PHONY: dev test check tools bench clean

## dev: run the whole system on the embedded stack (Temporal dev server + UI, Kafka, S3)
dev:
	$(GO) run ./deploy/dev

## test: formatting, vet, and every test with the race detector (installs the Temporal CLI if missing)
test: tools check
	TAXI_E2E_REQUIRE=1 $(GO) test -race -count=1 -timeout 15m ./...

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## tools: the Temporal CLI the end-to-end tests start a dev server from
tools:
	@if command -v temporal >/dev/null 2>&1 || [ -x "$(GOBIN_DIR)/temporal" ]; then :; else \
	  echo "installing the Temporal CLI ($(TEMPORAL)), a few minutes the first time"; \
	  $(GO) install $(TEMPORAL); fi

## bench: run the benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## clean: forget the embedded stack's state
clean:
	rm -rf .data
