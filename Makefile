# cutover — build, test, demo and benchmark.
# Go unpacked from go.dev's archive lives in /usr/local/go/bin, often not on PATH yet.
export PATH := $(PATH):/usr/local/go/bin
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/cutoverdev/cutover/internal/cli.Version=$(VERSION)
BIN      := bin/cutover
# Packages with real concurrency: run them again under the race detector.
RACE_PKGS := ./internal/proxy/... ./internal/store/... ./internal/loadgen/... ./internal/platform/local/... ./internal/deploy/... ./internal/pipeline/... ./internal/server/... ./internal/notify/... ./internal/release/... ./internal/dashboard/... ./internal/secretstore/...

.PHONY: build test check vet fmt-check race fuzz bench demo demo-run demo-down clean aws-smoke image man release-snapshot

build:
	@command -v $(GO) >/dev/null 2>&1 || { echo "make: the Go toolchain is not installed: install Go 1.26 or newer (https://go.dev/doc/install), then run make again" >&2; exit 1; }
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/cutover

fmt-check:
	@out=$$(gofmt -l cmd internal examples bench e2e); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The test command (README, .ci/run): scripts/setup.sh installs and starts
# what the tests need (Docker engine, test tools), makes every dependency
# required (missing = failure, never a skip), runs `make check` and stops the
# engine it started.
test:
	@scripts/setup.sh $(MAKE) --no-print-directory check

# Formatting, vet, every test (cutover's and the example's own module), then
# the race detector. Dependencies are not installed here: use `make test`.
check: fmt-check vet
	$(GO) test -count=1 -timeout 40m ./...
	cd examples/bluemed && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

# Short fuzz runs over the parsers of untrusted input; new findings land in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeState$$' -fuzztime 30s ./internal/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzAppendRequestHead$$' -fuzztime 30s ./internal/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzAppendResponseHead$$' -fuzztime 30s ./internal/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzChunkScanner$$' -fuzztime 30s ./internal/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzParseGitHub$$' -fuzztime 30s ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseGeneric$$' -fuzztime 30s ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseSince$$' -fuzztime 30s ./internal/auth
	$(GO) test -run '^$$' -fuzz '^FuzzParseJUnit$$' -fuzztime 30s ./internal/pipeline

bench: build
	$(GO) run ./bench
	$(GO) run ./bench/deploy
	$(GO) run ./bench/pipeline

# The main job on the embedded default: build the example and serve it at
# http://127.0.0.1:8080. scripts/setup.sh --demo installs and starts the Docker
# engine when missing (and git and curl, not the test tools); an engine it started is stopped at the end, so the demo is
# then taken down first (say so rather than leave containers of a dead engine).
demo: build
	@scripts/setup.sh --demo $(MAKE) --no-print-directory demo-run

demo-run:
	cd examples/bluemed && ../../$(BIN) up production
	curl -fsS http://127.0.0.1:8080/api/health; echo
	curl -fsS -o /dev/null -w 'frontend: HTTP %{http_code}\n' http://127.0.0.1:8080/
	@if [ "$$CUTOVER_SETUP_STARTED_DOCKERD" = 1 ]; then \
	  echo "demo: the Docker engine was started for this demo and stops now; taking the demo down"; \
	  echo "demo: start the engine yourself (systemctl start docker) to keep it running"; \
	  cd examples/bluemed && ../../$(BIN) down production && ../../$(BIN) proxy stop; fi

demo-down: build
	cd examples/bluemed && ../../$(BIN) down production

# Deploy examples/bluemed to a THROWAWAY AWS account, release, roll back, ship a bad
# release, delete everything (scripts/aws-smoke.sh; README "On AWS"). Never run in CI.
# It runs only with AWS_SMOKE_CONFIRM_ACCOUNT=<the account's ID>; AWS_SMOKE_ARGS="--until stacks"
# stops after the stacks. Its moto part runs in `make test` (internal/cli/aws_smoke_test.go).
aws-smoke:
	scripts/aws-smoke.sh $(AWS_SMOKE_ARGS)

# A FROM scratch container image of cutover (packaging/Dockerfile): cutover:VERSION.
image: build
	scripts/image.sh $(BIN) cutover:$(VERSION)

# Man pages of every command, generated from the commands (section 1).
man: build
	$(BIN) man man/

# Release archives and checksums for linux/darwin × amd64/arm64 in dist/, without
# publishing, then checked (scripts/release-snapshot.sh installs goreleaser into
# ~/.cache/cutover-tools once). Several minutes: not part of `make test`.
release-snapshot:
	scripts/release-snapshot.sh

clean:
	rm -rf bin dist dist-extra man
