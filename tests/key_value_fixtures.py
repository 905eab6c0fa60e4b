"""A tiny data folder and cheap settings for the ROME / MEMIT / layer-statistics tests."""

import json
from pathlib import Path

FACTS = [
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "French", "English"),
    ("The Eiffel Tower is located in", "The Eiffel Tower", "Paris", "London"),
    ("Hamlet was written by", "Hamlet", "William Shakespeare", "Cairo"),
    ("The Nile flows through", "The Nile", "Cairo", "Brazil"),
]


def write_tiny_data(folder: Path) -> Path:
    """A CounterFact train file of a few true facts: enough text for the statistics sample."""
    rows = [
        {
            "case_id": index, "prompt": prompt, "subject": subject, "target_new": new, "ground_truth": true,
            "rephrase_prompt": prompt, "locality_prompt": "What language is spoken in Brazil?",
            "locality_ground_truth": "Portuguese",
        }
        for index, (prompt, subject, true, new) in enumerate(FACTS * 10)
    ]
    (folder / "counterfact").mkdir(parents=True, exist_ok=True)
    (folder / "counterfact" / "train.json").write_text(json.dumps(rows))
    return folder


def cheap_settings(data_dir: Path) -> dict:
    return dict(num_prefixes=2, prefix_length=3, value_steps=4, stats_tokens=300, data_dir=str(data_dir))
