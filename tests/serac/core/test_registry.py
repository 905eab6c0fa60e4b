"""How the core finds methods (entry points), and the pieces every method builds itself from."""

import pytest
import torch

from serac.core.composed_config import method_config
from serac.core.editor import Editor
from serac.core.models import load_language_model
from serac.core.registry import editor_class, editor_names, trainer


def test_the_top_level_packages_export_every_editor_and_config():
    import mend
    import serac

    for package, names in ((serac, ("SERAC", "SERACConfig", "CacheEditor", "CacheConfig")),
                           (mend, ("MENDEditor", "MENDConfig", "FTEditor", "FTKLEditor", "FTLEditor", "FTConfig"))):
        for name in names:
            assert name in package.__all__ and getattr(package, name)


def test_every_registered_editor_loads_and_trained_methods_have_a_trainer():
    for name in editor_names():
        assert issubclass(editor_class(name), Editor) and editor_class(name).name == name
    for name in ("serac", "cache", "mend"):
        assert callable(trainer(name))


def test_unknown_and_untrained_methods_get_clear_errors():
    with pytest.raises(ValueError, match="unknown editor 'nope'; known editors: .*serac"):
        trainer("nope")
    with pytest.raises(ValueError, match="'ft' editor has nothing to train"):
        trainer("ft")


def test_method_config_takes_the_model_from_model_and_rejects_unknown_settings():
    from mend.finetune import FTConfig

    composed = {"model": {"name": "tiny-gpt2", "prompt_format": "chat"}, "alg": {"ft": {"steps": 3}}}
    config = method_config(FTConfig, composed, "ft")
    assert (config.model_name, config.prompt_format, config.steps) == ("tiny-gpt2", "chat", 3)
    with pytest.raises(ValueError, match=r"unknown settings \['stepz'\] in alg.ft"):
        method_config(FTConfig, {**composed, "alg": {"ft": {"stepz": 3}}}, "ft")


def test_language_models_load_on_the_device_chosen_at_run_time(monkeypatch):
    monkeypatch.setenv("SERAC_DEVICE", "auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert load_language_model("tiny-llama").device.type == expected
    assert load_language_model("tiny-llama", "cpu", "chat").prompt_format == "chat"


@pytest.mark.parametrize("config_name", ["CacheConfig", "MENDConfig", "FTConfig", "FTKLConfig", "FTLConfig", "ROMEConfig", "MEMITConfig"])
def test_every_method_config_checks_its_base_model_and_prompt_format_alike(config_name):
    import mend
    import serac

    config_class = getattr(serac, config_name, None) or getattr(mend, config_name)
    with pytest.raises(ValueError, match=rf"{config_name}.prompt_format must be 'auto', 'plain' or 'chat', got 'html'"):
        config_class(prompt_format="html")
    with pytest.raises(ValueError, match="model_name must not be empty"):
        config_class(model_name=" ")


def test_an_editor_records_the_prompt_format_its_model_resolved_and_refuses_a_contradicting_one():
    from mend import FTConfig, FTEditor

    chat_model = load_language_model("tiny-llama", "cpu")  # "auto", and the tiny tokenizer has a chat template
    assert FTEditor(chat_model, FTConfig(model_name="tiny-llama")).config.prompt_format == "chat"
    with pytest.raises(ValueError, match="FTConfig.prompt_format is 'plain' but the language model prompts in 'chat'"):
        FTEditor(chat_model, FTConfig(model_name="tiny-llama", prompt_format="plain"))
