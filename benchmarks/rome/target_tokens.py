"""Which target token fails the strict metric after a ROME edit: per token, the target, the
argmax and the target's probability, on the edit prompt and its rephrases (teacher forced).

    .venv/bin/python benchmarks/rome/target_tokens.py --records 1 3 4 --value-steps 15 --early-stop-nll 0.05
    .venv/bin/python benchmarks/rome/target_tokens.py --records 3 4 --value-steps 40 --early-stop-nll 0.005
"""

import argparse

import torch

from mend.rome import ROMEConfig, ROMEEditor
from serac.core.data import load_records
from serac.core.models import load_language_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="zsre")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--records", type=int, nargs="+", required=True, help="indices into the split")
    parser.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="plain")
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--num-prefixes", type=int, default=4)
    parser.add_argument("--value-steps", type=int, default=15)
    parser.add_argument("--early-stop-nll", type=float, default=5e-2)
    parser.add_argument("--clamp-factor", type=float, default=4.0, help="||z - z0|| <= clamp_factor * ||z0||")
    args = parser.parse_args()
    torch.set_num_threads(1)

    language_model = load_language_model("smollm2-135m", "cpu", args.prompt_format)
    config = ROMEConfig(
        model_name="smollm2-135m", prompt_format=args.prompt_format, layer=args.layer, num_prefixes=args.num_prefixes,
        value_steps=args.value_steps, early_stop_nll=args.early_stop_nll, clamp_factor=args.clamp_factor,
    )
    editor = ROMEEditor(language_model, config)
    records = load_records(args.dataset, args.split)
    decode = language_model.tokenizer.decode
    for index in args.records:
        record = records[index]
        editor.add_edits([record])
        for prompt in (record.prompt, *record.rephrases):
            score = editor.score([prompt], [record.target])[0]
            print(
                index, repr(prompt),
                "target", [decode([token]) for token in score.target_ids.tolist()],
                "argmax", [decode([token]) for token in score.predicted_ids.tolist()],
                "p", [round(float(p), 2) for p in score.logprobs.exp()],
                flush=True,
            )
        editor.reset()


if __name__ == "__main__":
    main()
