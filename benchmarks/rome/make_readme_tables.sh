#!/bin/sh
# Prints the README's tables from the committed results (run from the project root).
# Usage: sh benchmarks/rome/make_readme_tables.sh [N_sweep]   (the sweep is compared on its first N_sweep records)
set -e
R=benchmarks/rome/results
S=${1:-24}
RUN=".venv/bin/python benchmarks/rome/run_edits.py --summarize"
echo "Layer sweep: first $S records per layer (layer 7 = the main run's first $S)"
$RUN $R/sweep_rome_layer3.jsonl $R/rome_counterfact_val.jsonl $R/sweep_rome_layer13.jsonl $R/sweep_rome_layer20.jsonl --first $S
echo
echo "Main runs (all finished records)"
$RUN $R/rome_counterfact_val.jsonl $R/sweep_rome_layer3.jsonl $R/memit_counterfact_val_batch4.jsonl \
    $R/memit_counterfact_val_batch4_lambda1500.jsonl $R/memit_counterfact_val_batch25_lambda1500.jsonl $R/rome_zsre_dev.jsonl
