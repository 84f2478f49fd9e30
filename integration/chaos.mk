# make chaos: the long chaos run of issue 5 (integration/chaos_test.go),
# with its report on stdout. make chaos CHAOS_DURATION=30m CHAOS_SEED=42
# replays a schedule; CHAOS_SEED=0 draws a new seed (printed).
CHAOS_DURATION ?= 10m
CHAOS_SEED ?= 0
CHAOS_FLAGS ?=

.PHONY: chaos chaos-deps

# chaos-deps installs nftables (the cut fault's firewall rules).
chaos-deps:
	@command -v nft >/dev/null || (apt-get update -qq && apt-get install -y -qq nftables)

chaos: build chaos-deps
	$(GO) test -run TestChaos -count=1 -timeout 30m ./integration/ -dfs-binary=$(CURDIR)/$(BIN)/dfs \
		-chaos.duration=$(CHAOS_DURATION) -chaos.seed=$(CHAOS_SEED) $(CHAOS_FLAGS) -v

# The integration tests run a short TestChaos, which needs nft too.
test-integration: chaos-deps
