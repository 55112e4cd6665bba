# tcpactor — build, run, test. See README.md.
GO        ?= go
BIN       := $(CURDIR)/.bin
ACTOR_DIR  = $(shell $(GO) list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)/actor
PROTOS    := $(wildcard proto/tcpactor/v1/*.proto)
LISTEN    ?= 127.0.0.1:7070
SOAK_DURATION ?= 60s
FUZZTIME  ?= 5s

.PHONY: all build run test proto proto-check bench lint fmt-check vet soak fuzz

all: build

build:
	$(GO) build ./...
	$(GO) build -o $(BIN)/tcpactor ./cmd/tcpactor

## run: the main job — an echo server on $(LISTEN); try it with `nc 127.0.0.1 7070`.
run: build
	$(BIN)/tcpactor serve --listen $(LISTEN)

## test: formatting, vet, and every test with the race detector.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint: fmt-check vet

## proto: regenerate messages/ from proto/ (protoc from Debian's protobuf-compiler).
proto:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc -I proto -I $(ACTOR_DIR) --plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
		--go_out=. --go_opt=module=github.com/tcpactor/tcpactor $(PROTOS:proto/%=%)

## proto-check: fail when the committed generated code is stale.
proto-check:
	@tmp=$$(mktemp -d); cp -r messages $$tmp/; \
	$(MAKE) --no-print-directory proto >/dev/null; \
	if ! diff -r $$tmp/messages messages >/dev/null; then \
		diff -ru $$tmp/messages messages | head -40; cp -r $$tmp/messages/. messages/; rm -rf $$tmp; \
		echo "generated code in messages/ is stale: run make proto and commit"; exit 1; fi; \
	rm -rf $$tmp; echo "proto-check: messages/ is current"

## bench: tcpactor against a plain net.Listener server, side by side
## (cmd/tcpactor-bench; flags in BENCH_FLAGS, e.g. make bench BENCH_FLAGS=--quick).
BENCH_FLAGS ?=
bench:
	$(GO) build -o $(BIN)/tcpactor-bench ./cmd/tcpactor-bench
	$(BIN)/tcpactor-bench $(BENCH_FLAGS)

## soak: 10,000 live connections with echo traffic and 200 conn/s churn for
## $(SOAK_DURATION), then 1,000 through a handler on a second node; every echo
## checked, peaks reported, goroutines and descriptors back to baseline.
## SOAK_ARGS passes more flags (see .bin/tcpactor-soak --help).
soak:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/tcpactor-soak ./cmd/tcpactor-soak
	ulimit -n $$(ulimit -Hn); $(BIN)/tcpactor-soak --duration $(SOAK_DURATION) $(SOAK_ARGS)

## fuzz: every fuzz target (func FuzzXxx in a *_fuzz_test.go) for $(FUZZTIME)
## each, from its committed seed corpus (testdata/fuzz/FuzzXxx), through
## scripts/fuzz-one (which excuses Go 1.26's fuzz-coordinator race alone).
fuzz:
	@set -e; for f in $$(git ls-files '*_fuzz_test.go'); do \
		pkg=./$$(dirname $$f); \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
			GO=$(GO) scripts/fuzz-one $$pkg $$fn $(FUZZTIME); \
		done; \
	done
