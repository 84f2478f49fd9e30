# make bench-deps / make bench — the side-by-side benchmark (bench/cmd/dfsbench).
# Included by the top Makefile. See docs/performance.md.
#   make bench BENCH_FLAGS="-quick"        a short run for development
#   make bench BENCH_FLAGS="-compare bench/results/FILE.json"
BENCH_FLAGS ?=
BENCH_PKGS := glusterfs-server glusterfs-client fio

.PHONY: bench bench-deps

# bench-deps installs GlusterFS and fio from Debian when missing (as root).
bench-deps:
	@missing=""; for p in $(BENCH_PKGS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "bench-deps: $(BENCH_PKGS) already installed"; fi

# bench runs the same workload on a local directory, a dfs replica 3 volume
# and a GlusterFS replica 3 volume (when glusterd can be started).
bench: build
	@mkdir -p bench/results
	$(GO) build -o bench/bin/dfsbench ./bench/cmd/dfsbench
	bench/bin/dfsbench -dfs $(CURDIR)/$(BIN)/dfs -results bench/results $(BENCH_FLAGS)
