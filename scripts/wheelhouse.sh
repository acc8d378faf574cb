#!/usr/bin/env bash
# Wheels for installing cenn offline onto a machine that already has its own (CUDA) PyTorch.
#
#   scripts/wheelhouse.sh PYVER DIR        e.g. scripts/wheelhouse.sh 3.12 wheelhouse
#
# Run on a machine that reaches a package index. DIR receives cenn's own wheel and manylinux x86_64
# binary wheels, for CPython PYVER, of every dependency of cenn (with theirs) except the packages such
# a node already has: torch and the rest of NODE_HAS below (override with CENN_NODE_HAS="name ...";
# names as pip writes them in wheel file names). Versions are pinned to those of the environment that
# runs this script (where cenn's tests pass); CENN_WHEELHOUSE_PIN=0 takes the newest instead.
# CENN_WHEELHOUSE_SELF=0 leaves cenn's wheel out, where the checkout travels with the wheels (as with
# scripts/gpu_round.sh, which installs cenn from the checkout).
#
# On the node, with no network, install without touching its torch (every installed package is
# pinned to its installed version, so pip can add packages but never replace one):
#
#   python3 -m pip list --format=freeze > /tmp/installed.txt
#   python3 -m pip install --no-index --find-links DIR -c /tmp/installed.txt cenn
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PYVER DIR   (e.g. $0 3.12 wheelhouse)" >&2
    exit 2
fi
pyver=$1
dir=$(realpath -m "$2")
cd "$(dirname "$0")/.."  # the repository root: cenn's wheel is built from it
python=${PYTHON:-python3}
# What a CUDA PyTorch node (this workplace's H200 image) already holds among cenn's dependencies
# and theirs: torch, lightning, tensorboard and the scientific stack.
NODE_HAS=${CENN_NODE_HAS:-"torch numpy scipy matplotlib tqdm lightning tensorboard safetensors packaging \
pyyaml typing_extensions"}
# cenn's dependencies that such a node lacks (pyproject.toml); pip adds what they need in turn.
MISSING="zarr astropy healpy tomli-w"
platforms=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64
           manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64)

mkdir -p "$dir"
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
if [ "${CENN_WHEELHOUSE_PIN:-1}" != 0 ]; then
    "$python" -m pip list --format=freeze --exclude cenn > "$pins"
fi
platform_args=()
for p in "${platforms[@]}"; do platform_args+=(--platform "$p"); done
# shellcheck disable=SC2086  # MISSING is a list of names
"$python" -m pip download --quiet --only-binary=:all: --implementation cp --python-version "$pyver" \
    "${platform_args[@]}" --constraint "$pins" --dest "$dir" $MISSING

# Drop what the node has: pip downloaded it only to complete the resolution.
for name in $NODE_HAS; do
    pattern=$(echo "$name" | tr '-' '_')
    find "$dir" -maxdepth 1 -iname "${pattern}-[0-9]*.whl" -delete
done

if [ "${CENN_WHEELHOUSE_SELF:-1}" != 0 ]; then
    "$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$dir" .
fi

echo "$dir ($(du -sh "$dir" | cut -f1)), for CPython $pyver on manylinux x86_64:"
ls -1 "$dir"
