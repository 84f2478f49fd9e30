#!/usr/bin/env bash
# Installs what dfs needs to build and test on a Debian machine: Go must be
# at /usr/local/go; fuse3 (fusermount3, /dev/fuse tools) comes from Debian.
# Quiet and quick when everything is there already.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null; then
	echo "deps: Go is not installed at /usr/local/go; install Go 1.26 or later first" >&2
	exit 1
fi
missing=()
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v flock >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: need ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
go mod download
