#!/usr/bin/env bash
# The one GPU call that produced the shipped weights (a bare CUDA machine with torch; the
# Python wheels it lacks travel in $WHEELS). Steps run under a wall-clock deadline: the
# segmenter trains in the background while the data is written and the reasoner is SFT'd and
# then GRPO'd; each stage's step count is printed ("repeat with --steps N"), and run_all.sh
# replays exactly those counts. Results land in $OUT (each file < 16 MB).
#   OUT=/some/dir WHEELS=runs/whl bash recipes/embedded/remote.sh
set -uo pipefail
START=$(date +%s)
BUDGET=${BUDGET:-470}          # seconds for everything below
SEG_MIN=${SEG_MIN:-6.0}
SFT_MIN=${SFT_MIN:-2.2}
WHEELS=${WHEELS:-runs/whl}
RUN=${RUN:-/tmp/embedded}
OUT=${OUT:?set OUT}
elapsed() { echo $(( $(date +%s) - START )); }

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
if ! python3 -c "import segzero_edge.train" 2>/dev/null; then
  # the package maps runtime/, export/ and train/ into segzero_edge (pyproject package-dir)
  rm -rf /tmp/pk && mkdir -p /tmp/pk && cp -r segzero_edge /tmp/pk/ && cp -r runtime export train /tmp/pk/segzero_edge/
  export PYTHONPATH=/tmp/pk:$PYTHONPATH
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, torch.cuda.get_device_name(0))"
mkdir -p "$RUN"
echo "[remote] setup done at $(elapsed) s"

pack_segmenter() {
  tar -czf "$OUT/segmenter.tgz" -C "$RUN" segmenter && echo "[remote] segmenter packed at $(elapsed) s"
}
( python3 recipes/embedded/train_segmenter.py --out "$RUN/segmenter" --minutes "$SEG_MIN" --workers 6 ${SEG_ARGS:-} \
    > "$RUN/segmenter.log" 2>&1; pack_segmenter ) &
SEG_PID=$!

python3 recipes/embedded/make_data.py --out "$RUN/data" --workers 10 ${DATA_ARGS:-} || exit 2
echo "[remote] data done at $(elapsed) s"

python3 recipes/embedded/sft_reasoner.py --data "$RUN/data" --out "$RUN/sft" --minutes "$SFT_MIN" \
    --eval-rows 200 --workers 10 ${SFT_ARGS:-} || exit 3
tar -cf - -C "$RUN" sft | split -b 15M - "$OUT/sft.tar.part-"
echo "[remote] sft done at $(elapsed) s"

# GRPO gets what is left, keeping 70 s for merge, eval and packing
GRPO_MIN=$(python3 -c "print(max(0.5, ($BUDGET - $(elapsed) - 70) / 60))")
echo "[remote] grpo budget $GRPO_MIN min"
python3 recipes/embedded/grpo_reasoner.py --config recipes/embedded/grpo.yaml --minutes "$GRPO_MIN" \
    --eval-rows 200 --data-dir "$RUN/data" model="$RUN/sft" data="$RUN/data/train.parquet" \
    output_dir="$RUN/grpo" ${GRPO_ARGS:-} 2>&1 | grep -v "Loading weights\|FutureWarning\|warnings.warn"
mkdir -p "$RUN/grpo_adapters"
for d in "$RUN"/grpo/checkpoint-*; do
  [ -d "$d" ] && mkdir -p "$RUN/grpo_adapters/$(basename "$d")" && cp "$d"/adapter_* "$RUN/grpo_adapters/$(basename "$d")/"
done
cp "$RUN"/grpo/{adapter_*,grpo_report.json,metrics.csv,train_config.yaml,run_info.json} "$RUN/grpo_adapters/" 2>/dev/null
tar -czf "$OUT/grpo.tgz" -C "$RUN" grpo_adapters
echo "[remote] grpo done at $(elapsed) s"

wait $SEG_PID
mkdir -p "$RUN/logs"
cp "$RUN/segmenter.log" "$RUN/times.jsonl" "$RUN/logs/" 2>/dev/null
cp "$RUN/sft/train_report.json" "$RUN/logs/sft_report.json" 2>/dev/null
cp "$RUN/segmenter/train_report.json" "$RUN/logs/segmenter_report.json" 2>/dev/null
cp "$RUN/data/info.json" "$RUN/logs/data_info.json" 2>/dev/null
tar -czf "$OUT/logs.tgz" -C "$RUN" logs
echo "[remote] all done at $(elapsed) s"
