#!/bin/sh
# Set-up time of a fresh clone, as a new machine sees it: no virtualenv, no download cache.
#
#   benchmarks/setup_time.sh CLONE demo|test
#
# Installs the environment `make demo` (demo) or `make test` (test) needs in the clone at
# CLONE, from empty caches, and prints the wall time. Run it on two clones (this code and the
# code before) in turn, several times, to compare: the network and the machine's load vary.
set -eu
[ $# -eq 2 ] || { echo "usage: benchmarks/setup_time.sh CLONE demo|test" >&2; exit 2; }
clone=$1
case "$2" in
    demo) target=.venv/.installed ;;
    test) target=$(grep -q '^TEST_STAMP' "$clone/Makefile" && echo .venv/.installed-test || echo .venv/.installed-spark) ;;
    *) echo "usage: benchmarks/setup_time.sh CLONE demo|test" >&2; exit 2 ;;
esac
caches=$(mktemp -d)
trap 'rm -rf "$caches"' EXIT
rm -rf "$clone/.venv" "$clone/.uv"
began=$(date +%s.%N)
UV_CACHE_DIR="$caches/uv" PIP_CACHE_DIR="$caches/pip" make -s -C "$clone" "$target" >/dev/null
ended=$(date +%s.%N)
echo "$2 environment of $clone: $(python3 -c "print(round($ended - $began, 1))") s"
