# dvpc — see README.md.
GO ?= go
BIN := bin/dvpc
DEMO := demo

.PHONY: all build test test-short demo bench fuzz clients clean deps

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dvpc

deps:
	bash testdata/install-deps.sh
	$(GO) mod download

# The whole suite, external tools included; nothing is skipped.
test: deps
	$(GO) vet ./...
	GOOS=windows $(GO) build -o /dev/null ./cmd/dvpc
	GOOS=darwin $(GO) build -o /dev/null ./cmd/dvpc
	$(GO) test -timeout 60m ./...

test-short: build
	$(GO) test -short ./...

# The main job end to end on a local store under ./demo.
demo: build
	bash testdata/demo.sh $(BIN) $(DEMO)

# dvpc against restic and borg on the same generated home; prints ratios.
bench: build
	$(GO) run ./cmd/dvpcbench -dvpc $(BIN) -work $${BENCH_DIR:-/tmp/dvpc-bench}

# Every fuzz target in turn, FUZZTIME each; not part of `make test`. New
# failing inputs land in testdata/fuzz/FuzzX/ of the package, the growing
# corpus in the Go build cache (see testdata/fuzz.sh).
FUZZTIME ?= 10m
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash testdata/fuzz.sh

clients:
	for p in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64; do \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -trimpath -o dist/dvpc-$${p%/*}-$${p#*/}$$( [ $${p%/*} = windows ] && echo .exe ) ./cmd/dvpc || exit 1; \
	done

clean:
	rm -rf bin dist $(DEMO)
