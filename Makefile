# remedy — make demo runs everything on this machine; make test runs every test.
GO        ?= go
PKGS      ?= ./...
TEST_TIMEOUT ?= 25m

.PHONY: demo test test-short deps build vet fmt-check bench fuzz clean

demo:
	$(GO) run ./cmd/remedy demo

build:
	$(GO) build -buildvcs=auto -o bin/remedy ./cmd/remedy
	$(GO) build -buildvcs=auto -o bin/remedy-agent ./cmd/remedy-agent

# deps installs and builds what the tests need (Debian packages, OPA CLI,
# kube-apiserver + etcd, PostgreSQL); every part is idempotent and cached.
deps:
	bash hack/install-deps.sh

# test is the whole suite: real Alertmanager, NATS, kube-apiserver, PostgreSQL and
# the kernel's network namespaces. REMEDY_E2E=1 makes a missing dependency a failure.
test: deps vet fmt-check
	REMEDY_E2E=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# test-short is the fast inner loop: no end-to-end tests.
test-short:
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench is the benchmark suite behind BENCHMARKS.md: every Go benchmark (hot-path pieces,
# audit stores, detectors), then the end-to-end load generator against an in-process
# engine beside a bare decoding handler.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/remedy bench

# fuzz runs every Fuzz target of the module for FUZZTIME each (hack/fuzz.sh finds them);
# FUZZ_MATCH selects targets by name, FUZZ_PARALLEL=1 keeps fuzzing to one core. The
# ordinary test run only replays their seeds.
FUZZTIME ?= 30s
FUZZ_MATCH ?= .
FUZZ_PARALLEL ?=
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ_MATCH=$(FUZZ_MATCH) FUZZ_PARALLEL=$(FUZZ_PARALLEL) bash hack/fuzz.sh $(PKGS)

# clean removes build output only. Never data/: it is the default --data-dir of `remedy
# serve`, the audit log among it (test/layout's TestMakeCleanKeepsData).
clean:
	rm -rf bin
