#!/usr/bin/env bash
# `make run` of each named config, one after the other, each on a fresh clone of this repository
# (the venv linked from this checkout, so the install is not timed); prints the seconds of each.
# docs/benchmarks.md §3.1-3.2.   Usage: bench/full_runs.sh vit config [colour ...]
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
for name in "$@"; do
    clone="$work/$name"
    git clone -q "$repo" "$clone" && ln -s "$repo/.venv" "$clone/.venv"
    run=$(awk '$1 == "run:" {print $2}' "$clone/config/$name.yaml")
    start=$(date +%s)
    (cd "$clone" && PYTHONPATH="$clone/src" make run ARGS="--configfile config/$name.yaml" \
        RUN="${run:-default}" > "$work/$name.log" 2>&1)
    echo "$name: rc=$? seconds=$(( $(date +%s) - start )) log=$work/$name.log"
done
# make in a clone re-points the venv's editable install at the clone: point it back here
"$repo/.venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$repo"
