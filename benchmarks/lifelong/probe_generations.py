"""The forgetting probe's greedy generations of a saved study state beside the unedited model's:
what the `repetitive_generations` share counts, read as text, and the share on more prompts than
the study's 20 (one prompt there moves it by 0.05).

    python benchmarks/lifelong/probe_generations.py outputs/study/rome__counterfact/state --prompts 100

The state folder is a weight editor's `state/` (FT, ROME, MEMIT, MEND: `Editor.save` of the run);
it is loaded from a scratch copy, then `reset()` gives the unedited model for the same prompts.
"""

import argparse
import tempfile
from pathlib import Path

from serac.core import metrics
from serac.core.forgetting import ForgettingProbe, ForgettingSettings
from serac.core.registry import load_working_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path, help="a saved editor folder, e.g. <run>/state")
    parser.add_argument("--prompts", type=int, default=20,
                        help="probe fact prompts to generate from, 1-100: the study's 20 first, then the other probe facts'")
    parser.add_argument("--show", type=int, default=20, help="generations printed side by side")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    study = ForgettingSettings()
    if not 1 <= args.prompts <= study.facts:
        parser.error(f"--prompts must be 1-{study.facts}: the study's probe holds {study.facts} facts")
    settings = ForgettingSettings(generation_prompts=args.prompts, data_dir=args.data_dir)
    probe = ForgettingProbe.build(settings)
    prompts = list(probe.generation_prompts)
    with tempfile.TemporaryDirectory() as scratch:
        editor = load_working_copy(args.state, Path(scratch) / "editor")
        try:
            edited = probe.generations(editor)
            editor.reset()
            unedited = probe.generations(editor)
        finally:
            editor.close()
    for prompt, before, after in list(zip(prompts, unedited, edited))[: args.show]:
        repeats = metrics.most_repeated_trigram_count(before), metrics.most_repeated_trigram_count(after)
        print(f"## {prompt}\n  unedited ({repeats[0]}x): {before!r}\n  edited   ({repeats[1]}x): {after!r}")
    for what, texts in (("unedited", unedited), ("edited", edited)):
        measures = probe.generation_measures(texts)
        print(f"{what}: repetitive {measures['repetitive_generations']:.2f} of {len(prompts)} prompts, "
              f"fluency {measures['generation_fluency']:.3f}")


if __name__ == "__main__":
    main()
