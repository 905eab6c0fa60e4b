#!/bin/sh
# Prints the README's tables from the committed results (run from the project root).
set -e
R=benchmarks/rome/results
echo "Layer sweep (first 24 CounterFact val records, or fewer where a run was cut short; layer 7 = the first rows of the main run)"
.venv/bin/python benchmarks/rome/run_edits.py --summarize $R/sweep_rome_layer3.jsonl $R/sweep_rome_layer13.jsonl $R/sweep_rome_layer20.jsonl
.venv/bin/python benchmarks/rome/run_edits.py --summarize $R/rome_counterfact_val.jsonl --first 24 | tail -1
echo
echo "Main runs"
.venv/bin/python benchmarks/rome/run_edits.py --summarize $R/rome_counterfact_val.jsonl $R/memit_counterfact_val_batch4.jsonl \
    $R/memit_counterfact_val_batch4_lambda1500.jsonl $R/memit_counterfact_val_batch25_lambda1500.jsonl $R/rome_zsre_dev.jsonl
