"""SERAC with 10^3 .. 10^6 edits in memory: quality among hard distractors, latency, throughput,
load time, RAM and disk. Resumable: run it again with the same arguments to continue.

    .venv/bin/python benchmarks/scale/scale_run.py --editor PATH/editor --run-dir RUN \
        --sizes 1000 10000 [--probes 200] [--seed 0] [--encoder-backend onnx-int8] [--setting subject_scope=true]
    .venv/bin/python benchmarks/scale/report.py RUN          # Markdown table + PNG

The trained editor is copied into RUN/editor once (its memory emptied; `--encoder-backend`
and index_kind "auto" written into the copy's editor.json) and loaded from there, so every
edit added is durable in RUN and a killed run continues where it stopped.

The memory fills in this order: the probed real edits (half CounterFact val, half zsRE dev,
each the only edit of its fact), then a seeded shuffle of the other real edits (CounterFact
+ zsRE, ~13.5k) and generated hard distractors (distractors.py), all encoded for real through
`editor.add_edits`. At each size N (in increasing order) it measures, on the probes: edit
success, paraphrase success and locality (1 - drawdown on their NQ / CounterFact
neighbourhood prompts, against the base model), with serac.core.evaluation.measure; the
time of a query in scope and out of scope against the base model answering alone (medians,
the two taking turns on each prompt);
add throughput of the fill; load time (the editor closed and loaded again); RSS; and disk per
edit. One JSON line per size goes to RUN/results.jsonl.
"""

import argparse
import itertools
import json
import random
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

from distractors import distractors, real_edits
from subject_facts import SubjectFacts

from serac import SERAC
from serac.core.evaluation import Unedited, measure
from serac.core.memory_editor import MEMORY_FOLDER
from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates
from serac.serac.encoder_backends import ENCODER_BACKENDS

FILL_CHUNK = 2000


def pick_probes(real: dict[str, list[EditRecord]], count: int, seed: int) -> list[EditRecord]:
    """`count` records of the evaluation splits, half CounterFact val, half zsRE dev, each the only
    real edit of its fact, and none whose question or locality prompts another real edit in the
    memory rightly answers (`subject_facts.py`): a CounterFact probe's subject has no other real
    edit in its relation, nor has any subject its neighbourhood prompts name; a zsRE probe's
    subject has no CounterFact edit."""
    facts = Counter(record.fact for records in real.values() for record in records)
    counterfact = real["counterfact/train"] + real["counterfact/val"]
    templates = RelationTemplates(counterfact)
    subject_facts = SubjectFacts(counterfact, templates, {r.subject for r in real["zsre/train"] + real["zsre/dev"] if r.subject})
    position = {id(record): index for index, record in enumerate(counterfact)}

    def answered_elsewhere(record: EditRecord) -> bool:
        if id(record) not in position:
            return bool(subject_facts.edited.get(record.subject))
        index = position[id(record)]
        template = templates.of_record[index]
        named = {subject for prompt in record.locality_prompts for subject in subject_facts.named_subjects(prompt)}
        return template is None or any(
            subject_facts.edited_elsewhere(subject, template, index) for subject in {record.subject, *named}
        )

    rng = random.Random(seed)
    probes = []
    for split in ("counterfact/val", "zsre/dev"):
        candidates = [
            r for r in real[split] if facts[r.fact] == 1 and r.rephrases and r.locality_prompts and not answered_elsewhere(r)
        ]
        probes += rng.sample(candidates, count // 2)
    return probes


STREAM_LENGTH = 1_000_000  # the shuffled stretch of the stream: every run, whatever its sizes, shares its prefix


def edit_stream(probes, real: dict[str, list[EditRecord]], largest: int, seed: int, stream_length: int = STREAM_LENGTH) -> list[tuple[str, str, str | None]]:
    """Every edit up to the largest size, in the order they enter the memory: the probes, then a
    seeded shuffle of the other real edits and the first distractors up to `stream_length` edits
    in all, then (past it) further distractors. The shuffle never depends on `largest`, so the
    memory at N is the same in a run that stops at N and in one that goes on to 10^6 (before,
    a run to 10^4 held only real edits at 10^4, one to 10^6 mostly distractors). Each edit is
    (prompt, target, subject): the memory keeps the subject, which `subject_scope` routes by."""
    probed = {id(record) for record in probes}
    rest = [(r.prompt, r.target, r.subject) for records in real.values() for r in records if id(r) not in probed]
    counterfact, zsre = real["counterfact/train"] + real["counterfact/val"], real["zsre/train"] + real["zsre/dev"]
    generator = distractors(counterfact, zsre, seed)
    mixed = rest + list(itertools.islice(generator, max(0, stream_length - len(probes) - len(rest))))
    random.Random(seed).shuffle(mixed)
    stream = [(r.prompt, r.target, r.subject) for r in probes] + mixed
    return (stream + list(itertools.islice(generator, max(0, largest - len(stream)))))[:largest]


def prepare(editor_path: Path, run_dir: Path, encoder_backend: str, settings: dict) -> Path:
    """RUN/editor: a copy of the trained editor that searches with index_kind "auto", the chosen
    encoder backend and the routing `settings` (`--setting`), all fixed for the run folder."""
    folder = run_dir / "editor"
    if folder.exists():
        config = json.loads((folder / "editor.json").read_text())["config"]
        changed = {key: value for key, value in settings.items() if config.get(key) != value}
        if changed:
            raise SystemExit(f"{folder} was made with other settings than {changed}: give another --run-dir")
        return folder
    staging = run_dir / ".editor-copy"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(editor_path, staging, ignore=shutil.ignore_patterns("memory.lock"))
    editor = SERAC.load(staging)
    try:
        if editor.edit_ids():
            raise SystemExit(f"{editor_path} holds edits; give the editor as trained (an empty memory)")
    finally:
        editor.close()
    # The empty memory was made for the trained encoder; another backend's vectors are another
    # space (the memory refuses them), so the copy starts a memory of its own.
    shutil.rmtree(staging / MEMORY_FOLDER)
    (staging / MEMORY_FOLDER).mkdir()
    body = json.loads((staging / "editor.json").read_text())
    body["config"].update(index_kind="auto", encoder_backend=encoder_backend, **settings)
    (staging / "editor.json").write_text(json.dumps(body, indent=2))
    SERAC.load(staging).close()  # the settings load
    staging.rename(folder)
    return folder


def parse_setting(text: str) -> tuple[str, object]:
    key, separator, value = text.partition("=")
    try:
        if not separator:
            raise ValueError
        return key.strip(), json.loads(value)
    except ValueError:
        raise SystemExit(f"--setting {text!r}: give KEY=VALUE with a JSON value, e.g. subject_scope=true") from None


def paired_medians(functions: dict, calls: list, repeats: int) -> dict[str, float]:
    """Median seconds of each function over `calls` x `repeats`, the functions taking turns on each
    call (after one warm-up round), so a change in the machine's load reaches all of them alike."""
    for function in functions.values():
        function(calls[0])
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for call in calls:
            for name, function in functions.items():
                started = time.perf_counter()
                function(call)
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in samples.items()}


def query_timings(editor: SERAC, in_scope: list[str], out_of_scope: list[str], repeats: int) -> dict[str, float]:
    """Milliseconds: the base model answering alone, a routed query out of scope and in scope, routing alone."""
    base = lambda q: editor.base.generate([q], max_new_tokens=editor.config.max_new_tokens)  # noqa: E731
    out = paired_medians({"base_ms": base, "query_out_of_scope_ms": editor.query, "routing_ms": lambda q: editor.route([q])}, out_of_scope, repeats)
    timings = {name: 1000 * seconds for name, seconds in out.items()}
    timings["query_in_scope_ms"] = 1000 * paired_medians({"query": editor.query}, in_scope, repeats)["query"]
    timings["ratio_out_of_scope"] = timings["query_out_of_scope_ms"] / timings["base_ms"]
    return timings


def rss_megabytes() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--editor", type=Path, required=True, help="a trained SERAC editor folder (empty memory)")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder-backend", default="auto", help="the encoder the run embeds with (auto: what the package picks on this machine)", choices=ENCODER_BACKENDS)
    parser.add_argument(
        "--setting", action="append", default=[], metavar="KEY=VALUE",
        help="a routing setting of the run's editor copy, the value in JSON (e.g. subject_scope=true); repeatable",
    )
    parser.add_argument("--timing-prompts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    sizes = sorted(arguments.sizes)
    if arguments.probes < 2 or sizes[0] < arguments.probes:
        raise SystemExit(f"--probes must be >= 2 and at most the smallest size ({sizes[0]})")
    settings = dict(parse_setting(text) for text in arguments.setting)
    arguments.run_dir.mkdir(parents=True, exist_ok=True)
    results_file = arguments.run_dir / "results.jsonl"
    done = {json.loads(line)["edits"] for line in results_file.read_text().splitlines()} if results_file.exists() else set()

    real = real_edits()
    probes = pick_probes(real, arguments.probes, arguments.seed)
    stream = edit_stream(probes, real, sizes[-1], arguments.seed)
    folder = prepare(arguments.editor, arguments.run_dir, arguments.encoder_backend, settings)
    editor = SERAC.load(folder)
    before = Unedited(
        scores={r.source: editor.base.score(list(r.locality_prompts), list(r.locality_answers)) for r in probes}
    )
    in_scope = [r.rephrases[0] for r in probes[: arguments.timing_prompts]]
    out_of_scope = [r.locality_prompts[0] for r in probes[-arguments.timing_prompts :]]
    for size in sizes:
        if size in done:
            continue
        stored = editor.memory.count()
        if stored > size:
            raise SystemExit(f"{folder} holds {stored} edits, more than {size}: sizes must be measured in increasing order")
        started = time.perf_counter()
        for start in range(stored, size, FILL_CHUNK):
            editor.add_edits(stream[start : min(start + FILL_CHUNK, size)])
            print(f"  {min(start + FILL_CHUNK, size):,} edits", flush=True)
        add_rate = (size - stored) / (time.perf_counter() - started) if size > stored else None
        editor.memory.wait_for_index_build()
        quality = measure(editor, probes, before)
        locality = 1.0 - quality["drawdown"]
        row = {
            "edits": size,
            "edit_success": quality["edit_success"],
            "paraphrase_success": quality["rephrase_success"],
            "locality": locality,
            "composite": (quality["edit_success"] + quality["rephrase_success"] + locality) / 3,
            "in_scope_routed": sum(route.in_scope for route in editor.route(in_scope)) / len(in_scope),
            **query_timings(editor, in_scope, out_of_scope, arguments.repeats),
            "add_edits_per_s": add_rate,
            "memory": editor.memory_stats(),
            "rss_mb": rss_megabytes()[0],
            "disk_bytes_per_edit": folder_bytes(folder / "memory") / size,
        }
        editor.close()
        started = time.perf_counter()
        editor = SERAC.load(folder)
        row["load_s"] = time.perf_counter() - started
        with results_file.open("a") as results:
            results.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    editor.close()


if __name__ == "__main__":
    main()
