#!/usr/bin/env bash
# Every figure issue 14 asks of a trained MEND editor, in one command (hours on one CPU thread):
#   OMP_NUM_THREADS=1 bash benchmarks/mend/evaluate_editor.sh outputs/mend_full/editor [RESULTS_FOLDER]
# zsRE dev (all 537, single), CounterFact val (first 500, single), the sequential curve and batches of
# k = 10 and 100 edits on the first 100 zsRE dev records, and the edit frontier (α scaled, the drawdown
# split by the unedited answers' margin). Each part writes RESULTS_FOLDER/<part>/results.md (default
# EDITOR/../eval); a part already written is skipped, so running the command again resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
editor=${1:?usage: evaluate_editor.sh EDITOR_FOLDER [RESULTS_FOLDER]}
out=${2:-$editor/../eval}
[ -f "$editor/editor.json" ] || { echo "evaluate_editor.sh: $editor is not a saved editor (no editor.json)" >&2; exit 2; }

part() {
    local name=$1; shift
    if [ -f "$out/$name/results.md" ]; then echo "$name: already measured ($out/$name/results.md)"; return; fi
    .venv/bin/serac-evaluate alg=mend editor_path="$editor" results_dir="$out/$name" "$@"
}

part zsre_dev_single experiment=zsre
part counterfact_val500_single experiment=counterfact max_records=500
part zsre_dev100_sequential experiment=zsre max_records=100 protocol=sequential 'checkpoints=[1,2,5,10,20,50,100]' answer_locality=false
for k in 10 100; do
    part "zsre_dev100_batch$k" experiment=zsre max_records=100 protocol=batch batch_size=$k answer_locality=false
done
if [ ! -f "$out/frontier.md" ]; then
    .venv/bin/python benchmarks/mend/edit_frontier.py --mend "$editor" --no-gradient-steps \
        --alpha-scales 0.25 0.5 0.75 1 --records 100 > "$out/frontier.md.tmp"
    mv "$out/frontier.md.tmp" "$out/frontier.md"
fi
echo "results in $out"
