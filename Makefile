# cutover — build, test, demo and benchmark.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/cutoverdev/cutover/internal/cli.Version=$(VERSION)
BIN      := bin/cutover
# Packages with real concurrency: run them again under the race detector.
RACE_PKGS := ./internal/proxy/... ./internal/store/... ./internal/loadgen/... ./internal/local/... ./internal/deploy/... ./internal/pipeline/... ./internal/server/... ./internal/notify/...

.PHONY: build test vet fmt-check race fuzz bench demo demo-down clean aws-smoke

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/cutover

fmt-check:
	@out=$$(gofmt -l cmd internal examples bench e2e); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The test command (README, .ci/run): formatting, vet, every test, then the race detector.
test: fmt-check vet
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

# Short fuzz runs over the parsers of untrusted input; new findings land in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeState$$' -fuzztime 30s ./internal/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzParseGitHub$$' -fuzztime 30s ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseGeneric$$' -fuzztime 30s ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzParseJUnit$$' -fuzztime 30s ./internal/pipeline

bench: build
	$(GO) run ./bench
	$(GO) run ./bench/deploy
	$(GO) run ./bench/pipeline

# The main job on the embedded default: build the example and serve it at http://127.0.0.1:8080.
demo: build
	cd examples/bluemed && ../../$(BIN) up production
	curl -fsS http://127.0.0.1:8080/api/health; echo
	curl -fsS -o /dev/null -w 'frontend: HTTP %{http_code}\n' http://127.0.0.1:8080/

demo-down: build
	cd examples/bluemed && ../../$(BIN) down production

# Deploy examples/bluemed to a THROWAWAY AWS account, release, roll back, ship a bad
# release, delete everything (scripts/aws-smoke.sh; README "On AWS"). Never run in CI.
aws-smoke:
	scripts/aws-smoke.sh

clean:
	rm -rf bin
