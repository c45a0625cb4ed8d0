# ntptool — see README.md. `make demo` runs the main job on loopback,
# `make test` runs the tests (it fetches the real NTP peers first).
GO        ?= go
BIN       := bin/ntptool
PEERS_DIR ?= $(CURDIR)/.cache/peers
export NTPTOOL_PEERS := $(PEERS_DIR)/root
FUZZTIME  ?= 20s

.PHONY: build build-minimal test lint fuzz bench bench-query bench-serve bench-sim bench-daemon soak demo check peers clean package

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/ntptool

# The same without the Prometheus endpoint (-tags nometrics): half the size
# and the resident memory, for minimal images that are not scraped.
build-minimal:
	CGO_ENABLED=0 $(GO) build -tags nometrics -trimpath -ldflags='-s -w' -o $(BIN)-minimal ./cmd/ntptool

# The real peers (chronyd, NTPsec ntpd, ntpdig) unpacked into a private cache.
peers:
	@scripts/peers.sh $(PEERS_DIR) >/dev/null

# The tests: everything under the race detector; then the heavy engine
# simulations at full size without it (under it they run a few seeds: the
# detector finds nothing in single-goroutine simulations and makes them ten
# times slower); then the end-to-end subset in a QEMU guest (E2E_CI).
# Scenarios 1 and 3 (negative control and the hooks' backward step), about
# 8.3 min measured (docs/e2e.md, "CI").
E2E_CI ?= -scenarios discipline,dhcp-noh,dhcp-hooks-back -quick
test: peers
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'TestStress|TestReferenceScenarios' ./daemon/ ./bench/sim/
	$(GO) run ./e2e $(E2E_CI)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Every Fuzz* target in the repo, FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s $$pkg; \
		done; \
	done

bench: bench-query bench-sim bench-serve bench-daemon

bench-query: build peers
	$(GO) run ./bench/query -ntptool $(BIN)

bench-serve: build peers
	$(GO) run ./bench/serve -ntptool $(BIN)

# The daemon's footprint over 60 s idle with 4 loopback sources: ntptool run
# --no-clock-control vs chronyd -x, same run, both without CAP_SYS_TIME;
# the full build, then the minimal one, each against its own chronyd.
bench-daemon: build build-minimal peers
	$(GO) run ./bench/daemon -ntptool $(BIN)
	$(GO) run ./bench/daemon -ntptool $(BIN)-minimal

# The daemon's 10-minute soak with flapping sources (not in CI): RSS,
# threads and open descriptors every minute; fails on growth.
soak: build
	$(GO) run ./bench/daemon -ntptool $(BIN) -soak 10m

demo: build
	scripts/demo.sh $(BIN)

check: lint test

clean:
	rm -rf bin

# The seven accuracy scenarios of SIMULATION.md, 20 seeds each, beside
# chrony's and NTPsec's figures from clknetsim.
bench-sim:
	$(GO) run ./bench/sim -dir bench/sim

# Packages: bin/pkg/ntptool_VERSION-1_ARCH.deb, .rpm and .apk, built with
# nfpm from the static binary, the unit files and OpenRC script, the
# example config, and man pages and shell completions generated from the
# commands (dist/pkg/nfpm.yaml lists the files). PKG_OUT moves them.
VERSION    ?= 0.1.0
PKG_OUT    ?= $(CURDIR)/bin/pkg
MAINTAINER ?= ntptool developers <ntptool@users.noreply.github.com>
LICENSE    ?= LicenseRef-ntptool
NFPM_VERSION := v2.45.2

package: build
	@set -e; stage=$(PKG_OUT)/stage; rm -rf $$stage; mkdir -p $$stage/man $$stage/completions; \
	epoch=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}; \
	SOURCE_DATE_EPOCH=$$epoch $(GO) run -tags gendocs ./cmd/ntptool gen-docs --man $$stage/man --version $(VERSION); \
	gzip -9n $$stage/man/*.1; \
	for sh in bash fish; do $(BIN) completion $$sh > $$stage/completions/ntptool.$$sh; done; \
	$(BIN) completion zsh > $$stage/completions/_ntptool; \
	printf 'ntptool (%s-1) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
		'$(VERSION)' '$(VERSION)' '$(MAINTAINER)' "$$(date -u -R -d @$$epoch)" | gzip -9n > $$stage/changelog.Debian.gz; \
	GOBIN=$(PKG_OUT)/tools $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION); \
	sed -e "s|\$${VERSION}|$(VERSION)|; s|\$${ARCH}|$$($(GO) env GOARCH)|; s|\$${MAINTAINER}|$(MAINTAINER)|; s|\$${LICENSE}|$(LICENSE)|" \
		-e "s|\$${BIN}|$(abspath $(BIN))|; s|\$${STAGE}|$$stage|" dist/pkg/nfpm.yaml > $$stage/nfpm.yaml; \
	for p in deb rpm apk; do \
		SOURCE_DATE_EPOCH=$$epoch $(PKG_OUT)/tools/nfpm package --config $$stage/nfpm.yaml --packager $$p --target $(PKG_OUT)/; \
	done

# End-to-end tests on a real kernel clock: Debian's kernel in a QEMU (TCG)
# guest, one boot per scenario, against `ntptool serve` on 127.0.0.1. Only
# the guest's clock is ever changed. See docs/e2e.md; E2E_FLAGS=-list shows
# the scenarios, E2E_FLAGS=-pending also runs those that wait for `ntptool run`.
.PHONY: e2e-vm
e2e-vm:
	$(GO) run ./e2e $(E2E_FLAGS)
