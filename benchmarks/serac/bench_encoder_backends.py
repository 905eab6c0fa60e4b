"""add_edits throughput and routing on probes, per encoder backend (torch, torch-bf16, onnx, onnx-int8), in one run.

    .venv/bin/python benchmarks/serac/bench_encoder_backends.py \
        --classifier-weights PATH/scope_classifier.safetensors [--edits 1000] [--repeats 3] [--probe-records 300]

The scope classifier is all-MiniLM-L6-v2 with trained heads when `--classifier-weights` names
a training run's `scope_classifier/best/model.safetensors` (today's sentence-transformers
heads, or a run from before them) or a single-file classifier (the format editors were saved in
before those heads), untrained heads otherwise. The base and counterfactual models take no part in
adding edits or routing, so tiny ones keep the run light.

Throughput: `--edits` zsRE edits (train + dev) added in one `add_edits` call to an empty
memory, the backends interleaved in each of `--repeats` rounds (a load change on the shared
machine hits them alike); median edits/s. One prompt: median time to embed a single prompt, as a
routed query does (20 prompts x `--repeats`, backends interleaved). Vectors: cosine of each backend's embedding of those
prompts to the first backend's (torch by default). Routing: all zsRE dev edits in memory; probes are
each of the first `--probe-records` records' prompt and rephrases (in scope: routed to an
edit with the record's target) and its NQ locality question (out of scope: not routed);
agreement is the share of probes routed exactly as with the torch backend
(`--probe-records 0`: no routing). Route time: one out-of-scope probe routed per call, each
editor with its cross-encoder on ONNX Runtime (`cross_encoder_backend: onnx`) and on torch.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from serac import SERAC
from serac.core.data import load_records
from serac.core.models import load_language_model
from serac.core.training import load_trained_weights
from serac.serac.config import SERACConfig
from serac.serac.counterfactual import CounterfactualModel
from serac.serac.encoder_backends import ENCODER_BACKENDS
from serac.serac.scope_classifier import ScopeClassifier
from serac.serac.scope_classifier_training import ScopeClassifierTraining
from serac.serac.single_file_classifier import load_single_file_classifier

BACKBONE = "all-minilm-l6-v2"


def load_classifier(weights: Path | None) -> ScopeClassifier:
    if weights is None:
        return ScopeClassifier.from_backbone(BACKBONE)
    saved = load_file(weights)
    if any(name.startswith("classifier.embedder.") for name in saved):  # a training checkpoint of today's heads
        classifier = ScopeClassifier.from_backbone(BACKBONE)
        load_trained_weights(ScopeClassifierTraining(classifier), weights.parent)
        return classifier
    with tempfile.TemporaryDirectory() as folder:  # a training checkpoint names its tensors classifier.*
        single_file = Path(folder) / "scope_classifier.safetensors"
        save_file({name.removeprefix("classifier."): tensor.contiguous() for name, tensor in saved.items()}, single_file)
        return load_single_file_classifier(single_file, BACKBONE, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier-weights", type=Path)
    concrete = [backend for backend in ENCODER_BACKENDS if backend != "auto"]  # "auto" is one of them
    parser.add_argument("--backends", nargs="+", default=concrete, choices=concrete)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probe-records", type=int, default=300)
    parser.add_argument("--threshold", type=float, default=0.5)
    arguments = parser.parse_args()
    torch.manual_seed(0)

    dev = load_records("zsre", "dev")
    edits = [(r.prompt, r.target) for r in load_records("zsre", "train") + dev][: arguments.edits]
    classifier = load_classifier(arguments.classifier_weights).eval()
    tiny = load_language_model("tiny-llama", "cpu", "plain")
    editors = {}
    for backend in arguments.backends:
        config = SERACConfig(
            model_name="tiny-llama", classifier_backbone=BACKBONE, prompt_format="plain",
            encoder_backend=backend, threshold=arguments.threshold,
        )
        started = time.perf_counter()
        editors[backend] = SERAC(config, tiny, CounterfactualModel(tiny), classifier)
        print(f"{backend}: editor built in {time.perf_counter() - started:.1f} s (export and quantisation included)")
        classifier = load_classifier(arguments.classifier_weights).eval()  # each editor its own encoder

    rates = {backend: [] for backend in editors}
    cpu_rates = {backend: [] for backend in editors}
    for _ in range(arguments.repeats):
        for backend, editor in editors.items():
            editor.reset()
            started, cpu_started = time.perf_counter(), time.process_time()
            editor.add_edits(edits)
            rates[backend].append(len(edits) / (time.perf_counter() - started))
            cpu_rates[backend].append(len(edits) / (time.process_time() - cpu_started))
    # Edits per CPU-second (all of the process's threads): what the adds cost, whatever else the
    # shared machine runs; with one thread it is the rate one idle core would give.
    print(f"\nadd_edits, {len(edits)} edits in one call, torch threads {torch.get_num_threads()}, median of {arguments.repeats}:")
    print("| backend | edits/s (wall clock) | edits per CPU-second | ratio to torch (CPU) |\n|---|---|---|---|")
    reference = statistics.median(cpu_rates[arguments.backends[0]])
    for backend, samples in rates.items():
        cpu = statistics.median(cpu_rates[backend])
        print(f"| {backend} | {statistics.median(samples):.0f} | {cpu:.0f} | {cpu / reference:.2f} |")

    # A routed query embeds one prompt: per-call costs (autocast casting weights, say) show here.
    single = {backend: [] for backend in editors}
    for _ in range(arguments.repeats):
        for prompt, _ in edits[:20]:
            for backend, editor in editors.items():
                started = time.perf_counter()
                editor.classifier.encode([prompt])
                single[backend].append(1000 * (time.perf_counter() - started))
    print(f"\none prompt per call, {len(single[arguments.backends[0]])} calls, median ms:")
    print("| backend | ms per one-prompt encode |\n|---|---|")
    for backend, samples in single.items():
        print(f"| {backend} | {statistics.median(samples):.2f} |")

    # How far each backend's vectors are from the first backend's, on the same prompts in one call.
    prompts = [prompt for prompt, _ in edits]
    vectors = {backend: editor.classifier.encode(prompts) for backend, editor in editors.items()}
    print(f"\nvectors of the {len(prompts)} prompts, cosine to {arguments.backends[0]}'s:")
    print("| backend | minimum | mean |\n|---|---|---|")
    for backend, found in vectors.items():
        cosine = (found * vectors[arguments.backends[0]]).sum(1)
        print(f"| {backend} | {cosine.min():.5f} | {cosine.mean():.5f} |")

    if arguments.probe_records == 0:  # no routing
        for editor in editors.values():
            editor.close()
        return
    probes = dev[: arguments.probe_records]
    in_scope = [(query, r.target) for r in probes for query in (r.prompt, *r.rephrases)]
    out_of_scope = [r.locality_prompts[0] for r in probes if r.locality_prompts]
    routes = {}
    for backend, editor in editors.items():
        editor.reset()
        editor.add_edits([(r.prompt, r.target) for r in dev])
        routes[backend] = (editor.route([query for query, _ in in_scope]), editor.route(out_of_scope))
    print(f"\nrouting, {len(dev)} zsRE dev edits in memory, {len(in_scope)} in-scope and {len(out_of_scope)} out-of-scope probes,"
          f" threshold {arguments.threshold}:")
    print("| backend | in scope routed to its edit | out of scope rejected | routed as with torch | max |Δ probability| |")
    print("|---|---|---|---|---|")
    first_in, first_out = routes[arguments.backends[0]]
    for backend, (inside, outside) in routes.items():
        hit = sum(route.in_scope and route.target == target for route, (_, target) in zip(inside, in_scope)) / len(in_scope)
        rejected = sum(not route.in_scope for route in outside) / len(outside)
        pairs = list(zip(inside + outside, first_in + first_out))
        same = sum((a.in_scope, a.edit_id if a.in_scope else None) == (b.in_scope, b.edit_id if b.in_scope else None) for a, b in pairs)
        drift = max(abs(a.probability - b.probability) for a, b in pairs)
        print(f"| {backend} | {hit:.3f} | {rejected:.3f} | {same / len(pairs):.3f} | {drift:.4f} |")
    print_route_times(editors, out_of_scope[:20], arguments.repeats)
    for editor in editors.values():
        editor.close()


def print_route_times(editors: dict, queries: list[str], repeats: int) -> None:
    """Median ms of routing one query (embedding, search, cross-encoder over the top_k candidates),
    each editor with its cross-encoder on ONNX Runtime and on torch, all interleaved."""
    scorers = {backend: editor.classifier.fast_cross_encoder for backend, editor in editors.items()}
    times = {(backend, cross): [] for backend in editors for cross in ("onnx", "torch")}
    for _ in range(repeats):
        for query in queries:
            for (backend, cross), samples in times.items():
                editor = editors[backend]
                editor.classifier.use_fast_cross_encoder(scorers[backend] if cross == "onnx" else None)
                started = time.perf_counter()
                editor.route([query])
                samples.append(1000 * (time.perf_counter() - started))
    print(f"\none out-of-scope query routed per call ({len(queries)} queries x {repeats}), median ms:")
    print("| embedder backend | cross-encoder on ONNX Runtime | cross-encoder on torch |\n|---|---|---|")
    for backend in editors:
        print(f"| {backend} | {statistics.median(times[(backend, 'onnx')]):.1f} | {statistics.median(times[(backend, 'torch')]):.1f} |")


if __name__ == "__main__":
    main()
