"""Every shipped alg preset composes with every experiment and names a registered editor."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from serac.core.registry import editor_names
from serac.core.train_config import TrainConfig
from serac.serac.config import SERACConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
PRESETS = sorted(path.stem for path in (CONFIGS / "alg").glob("*.yaml"))
EXPERIMENTS = sorted(path.stem for path in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("preset", PRESETS)
def test_alg_presets_compose_into_a_training_config(preset, experiment):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        config = compose("train", overrides=[f"alg={preset}", f"experiment={experiment}"])
    assert config.alg.name in editor_names()
    assert config.experiment.dataset


def test_the_dialogue_preset_trains_the_counterfactual_model_longer_with_the_preference_term():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        quick = compose("train", overrides=["alg=serac_quick"]).alg
        dialogue = compose("train", overrides=["alg=serac_dialogue_quick"]).alg
    assert dialogue.preference_weight > 0
    assert dialogue.counterfactual_training.max_steps > quick.counterfactual_training.max_steps
    assert dialogue.classifier_training == quick.classifier_training


def test_the_full_mend_preset_stops_on_validation_and_resumes():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        training = compose("train", overrides=["alg=mend_full", "experiment=zsre_mixed"]).alg.training
    assert training.early_stop_patience and training.max_steps >= 10 * training.val_every * training.early_stop_patience
    assert TrainConfig(output_dir="x", **training).resume and training.checkpoint_every and training.plot_validation


def test_the_counterfact_presets_add_relation_negatives_to_the_quick_and_full_schedules():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        quick = compose("train", overrides=["alg=serac_quick"]).alg
        full = compose("train", overrides=["alg=serac"]).alg
        counterfact_quick = compose("train", overrides=["alg=serac_counterfact_quick", "experiment=counterfact"]).alg
        counterfact_full = compose("train", overrides=["alg=serac_counterfact", "experiment=counterfact"]).alg
    assert quick.relation_negatives_per_edit == 0 and counterfact_quick.relation_negatives_per_edit > 0
    assert counterfact_quick.classifier_training == quick.classifier_training
    assert counterfact_full.classifier_training == full.classifier_training and counterfact_full.relation_negatives_per_edit > 0


@pytest.mark.parametrize("preset", [preset for preset in PRESETS if preset.startswith("serac")])
def test_the_serac_presets_route_and_encode_with_the_editor_s_defaults(preset):
    # A preset that pins an inference setting hides a better default from every editor it trains
    # (serac.yaml kept encoder_backend "torch" after SERACConfig's default became "auto").
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        settings = compose("train", overrides=[f"alg={preset}"]).alg.serac
    defaults = SERACConfig()
    for name in ("encoder_backend", "cross_encoder_backend", "index_kind", "ivf_storage", "top_k", "rerank", "retrieval", "conflicts", "conflict_margin"):
        assert settings.get(name, getattr(defaults, name)) == getattr(defaults, name), name
    # The subject gate is on where it was measured: the presets for subject-relation facts (CounterFact).
    assert settings.get("subject_scope", defaults.subject_scope) == preset.startswith("serac_counterfact")
