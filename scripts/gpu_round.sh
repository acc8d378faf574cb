#!/usr/bin/env bash
# One GPU round on an offline node, from the repository root of a copied checkout:
#
#   scripts/gpu_round.sh MINUTES OUT_DIR
#
# Steps (each one's failure is reported and the rest still run where they can):
#   install   cenn from this checkout and its missing dependencies from the wheelhouse
#             ($CENN_WHEELHOUSE, default wheelhouse/ here; scripts/wheelhouse.sh), only if cenn is not
#             importable; every installed package is pinned, so the node's torch is never replaced
#   smoke     simulate a batch on the device and take five training steps (scripts/round_tools.py)
#   bench     benchmarks/bench_simulate.py, bench_network.py (with and without on-device simulation),
#             bench_full_sky.py (Nside $CENN_ROUND_NSIDE; 0 skips it)
#   train     the reference configuration (src/cenn/configs/reference-train.toml, streamed
#             reference-stream.toml simulated on the device) from the shipped weights
#             ($CENN_ROUND_INIT overrides), for what is left of MINUTES less $CENN_ROUND_RESERVE_S
#   evaluate  cenn evaluate (cenn, nilc, target-band) on small sets in the four latitude regions
#   export    the trained weights (else the initial ones) in half precision
# OUT_DIR receives four files, each well under 16 MB: weights-fp16.safetensors, metrics.json (compact:
# step statuses, smoke check, training and evaluation figures), benchmarks.jsonl (rows as in
# benchmarks/results.jsonl) and round.log. The exit status is 1 if any step failed.
#
# Sizes come from environment variables (CENN_ROUND_*, below); CENN_ROUND_TINY=1 gives CPU-sized
# defaults (64² patches, two training steps, no full sky; CENN_ROUND_INIT then names small weights) for
# tests. CENN_ROUND_STEPS (default "install,smoke,bench,train,evaluate"; the export always runs)
# chooses the steps; PYTHON (default python3) the interpreter.
set -u

if [ $# -ne 2 ] || ! [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: $0 MINUTES OUT_DIR   (e.g. $0 9 out)" >&2
    exit 2
fi
minutes=$1
out=$(realpath -m "$2")
wheelhouse=$(realpath -m "${CENN_WHEELHOUSE:-$(dirname "$0")/../wheelhouse}")
work=$(realpath -m "${CENN_ROUND_WORK:-$(mktemp -d)}")
if [ -n "${CENN_ROUND_INIT:-}" ]; then
    CENN_ROUND_INIT=$(realpath -m "$CENN_ROUND_INIT")
    export CENN_ROUND_INIT
fi
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$out" "$work"

py=${PYTHON:-python3}
if [ "${CENN_ROUND_TINY:-0}" = 1 ]; then  # CPU-sized defaults
    : "${CENN_ROUND_DEVICE:=cpu}" "${CENN_ROUND_ACCELERATOR:=cpu}" "${CENN_ROUND_PRECISION:=32-true}"
    : "${CENN_ROUND_NPIX:=64}" "${CENN_ROUND_CROP:=64}" "${CENN_ROUND_VAL_PATCHES:=8}"
    : "${CENN_ROUND_EVAL_PATCHES:=4}" "${CENN_ROUND_SMOKE_NPIX:=64}" "${CENN_ROUND_SMOKE_BATCH:=4}"
    : "${CENN_ROUND_NSIDE:=0}"
    : "${CENN_ROUND_TRAIN_ARGS=--max-steps 2 --samples-per-epoch 8 --batch-size 4}"
    : "${CENN_ROUND_RESERVE_S:=10}"
fi
device=${CENN_ROUND_DEVICE:-cuda}                  # torch device of every step
accelerator=${CENN_ROUND_ACCELERATOR:-gpu}         # Lightning accelerator of the training
precision=${CENN_ROUND_PRECISION:-bf16-mixed}      # Lightning precision of the training
npix=${CENN_ROUND_NPIX:-256}                       # validation and evaluation patch side, pixels
crop=${CENN_ROUND_CROP:-128}                       # streamed training crop side, pixels
val_patches=${CENN_ROUND_VAL_PATCHES:-256}         # patches watched during training
eval_patches=${CENN_ROUND_EVAL_PATCHES:-64}        # patches per latitude region evaluated
smoke_npix=${CENN_ROUND_SMOKE_NPIX:-128}           # smoke check patch side, pixels
smoke_batch=${CENN_ROUND_SMOKE_BATCH:-64}          # smoke check batch, patches
nside=${CENN_ROUND_NSIDE:-2048}                    # full-sky benchmark; 0: skipped
train_args=${CENN_ROUND_TRAIN_ARGS-}               # extra `cenn train` options
reserve_s=${CENN_ROUND_RESERVE_S:-150}             # seconds kept after training for evaluation and export
bench_s=${CENN_ROUND_BENCH_S:-300}                 # the benchmarks' time limit, seconds
wanted=${CENN_ROUND_STEPS:-install,smoke,bench,train,evaluate}
deadline=$(( $(date +%s) + $(awk "BEGIN { printf \"%d\", $minutes * 60 }") ))

wants() { [[ ",$wanted," == *",$1,"* ]]; }

# run_step NAME LIMIT_S COMMAND...: run with a time limit, log and record its exit status and duration.
run_step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    echo "=== $name ($(date -u +%H:%M:%S) UTC, limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@"  # functions too (export -f below)
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$work/steps.tsv"
    if [ "$rc" = 0 ]; then echo "=== $name ok"; else echo "=== $name FAILED (exit $rc)"; fi
    "$py" scripts/round_tools.py summary "$work" "$out" || echo "=== metrics.json not written"
    return "$rc"
}

install() {
    "$py" -m pip list --format=freeze > "$work/installed.txt"
    if ! "$py" -m pip install --no-index --find-links "$wheelhouse" --constraint "$work/installed.txt" \
        --no-build-isolation .; then
        echo "cenn did not build here: its dependencies from the wheelhouse, cenn from src/ by a .pth file"
        "$py" -m pip install --no-index --find-links "$wheelhouse" --constraint "$work/installed.txt" \
            zarr astropy healpy tomli-w || return 1
        echo "$PWD/src" > "$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/cenn-src.pth"
    fi
    echo "torch before: $(grep -i '^torch==' "$work/installed.txt")," \
        "after: $("$py" -c 'import torch; print(torch.__version__)')"
}

bench() {
    local rc=0
    export CENN_BENCH_RESULTS=$out/benchmarks.jsonl
    if [ "${CENN_ROUND_TINY:-0}" = 1 ]; then
        "$py" benchmarks/bench_simulate.py --device "$device" --npix 64 --patches 8 --batch 4 || rc=1
        "$py" benchmarks/bench_network.py --device "$device" --model unet-small --npix 64 --batch 4 \
            --steps 2 --warmup 1 --modes fp32 --simulator || rc=1
    else
        "$py" benchmarks/bench_simulate.py --device "$device" --patches 1024 --batch 256 || rc=1
        "$py" benchmarks/bench_network.py --device "$device" --model unet --npix "$crop" \
            --modes fp32,bf16,bf16_channels_last --simulator --simulator-mode bf16 || rc=1
    fi
    if [ "$nside" != 0 ]; then
        "$py" benchmarks/bench_full_sky.py --nside "$nside" --device "$device" --batch-size 128 || rc=1
    fi
    return "$rc"
}

# initial_weights: $CENN_ROUND_INIT, else the shipped reference weights.
initial_weights() {
    if [ -n "${CENN_ROUND_INIT:-}" ]; then
        echo "$CENN_ROUND_INIT"
    else
        "$py" -c "from cenn.pretrained import default_weights; print(default_weights())"
    fi
}

train() {
    local init train_minutes
    init=$(initial_weights) || return 1
    train_minutes=$(awk "BEGIN { printf \"%.2f\", ($deadline - $(date +%s) - $reserve_s) / 60 }")
    if awk "BEGIN { exit !($train_minutes < 0.1) }"; then
        echo "no time left to train ($train_minutes min)"
        return 1
    fi
    "$py" -c "import sys; from cenn.config import dumps_toml, read_toml; d = read_toml(sys.argv[1]); \
d['geometry']['npix'] = int(sys.argv[2]); open(sys.argv[3], 'w').write(dumps_toml(d))" \
        src/cenn/configs/reference-stream.toml "$crop" "$work/stream.toml" || return 1
    # shellcheck disable=SC2086  # train_args is a list of options
    "$py" -m cenn train "$work/run" --config src/cenn/configs/reference-train.toml \
        --simulation "$work/stream.toml" --val "$work/val.zarr" --init-weights "$init" \
        --max-time "$train_minutes" --simulate-on device --accelerator "$accelerator" --devices 1 \
        --precision "$precision" --no-progress --overwrite $train_args
}

# final_weights: the trained weights, else the initial ones.
final_weights() {
    if [ -f "$work/run/weights.safetensors" ]; then
        echo "$work/run/weights.safetensors"
    else
        initial_weights
    fi
}

evaluate() {
    "$py" -m cenn evaluate "$work"/eval-{all,inner,intermediate,high}.zarr --methods cenn,nilc,target-band \
        --weights "$(final_weights)" --out "$work/report" --device "$device" --noise-factors none \
        --overwrite --no-progress
}

export_weights() {
    "$py" -m cenn export-weights "$(final_weights)" "$out/weights-fp16.safetensors" --dtype fp16
}

remaining() { echo $(( deadline - $(date +%s) > 60 ? deadline - $(date +%s) : 60 )); }

round() {
    local failed=0
    printf '{"minutes": %s, "device": "%s", "accelerator": "%s", "precision": "%s", "npix": %s, "crop": %s, '\
'"val_patches": %s, "eval_patches": %s, "nside": %s, "train_args": "%s", "commit": "%s"}\n' \
        "$minutes" "$device" "$accelerator" "$precision" "$npix" "$crop" "$val_patches" "$eval_patches" \
        "$nside" "$train_args" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        > "$work/settings.json"
    echo "round: $minutes min, out $out, work $work, $(cat "$work/settings.json")"
    if wants install && ! "$py" -c "import cenn" 2>/dev/null; then
        run_step install 600 install || failed=$((failed + 1))
    fi
    if wants smoke; then
        run_step smoke 120 "$py" scripts/round_tools.py smoke "$device" "$work/smoke.json" \
            --npix "$smoke_npix" --batch "$smoke_batch" || failed=$((failed + 1))
    fi
    if wants bench; then
        run_step bench "$bench_s" bench || failed=$((failed + 1))
    fi
    if wants train || wants evaluate; then
        run_step simulate "$(remaining)" "$py" scripts/round_tools.py sets "$work" "$device" --npix "$npix" \
            --val "$val_patches" --eval "$eval_patches" || failed=$((failed + 1))
    fi
    if wants train; then
        run_step train "$(( $(remaining) + 120 ))" train || failed=$((failed + 1))
    fi
    if wants evaluate; then
        run_step evaluate "$(remaining)" evaluate || failed=$((failed + 1))
    fi
    run_step export 300 export_weights || failed=$((failed + 1))
    ls -l "$out"
    echo "round done: $failed step(s) failed"
    [ "$failed" = 0 ]
}

export -f install bench initial_weights train final_weights evaluate export_weights
export py out work device accelerator precision npix crop val_patches eval_patches nside train_args \
    reserve_s deadline wheelhouse
round 2>&1 | tee -a "$out/round.log"
exit "${PIPESTATUS[0]}"
