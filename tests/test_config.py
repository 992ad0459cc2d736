import json

import pytest

from selfimprove import config as configlib


def test_presets_and_methods_resolve():
    for preset in configlib.PRESETS:
        for method in configlib.METHODS:
            cfg = configlib.load(preset, method=method)
            assert cfg.method == method
    assert configlib.load("quickstart", method="no_filter").cascade.stages == []
    assert [s.strategy for s in configlib.load("quickstart", method="paper").cascade.stages] == \
        ["cycle_consistency", "factuality", "correctness"]


def test_config_round_trips_through_yaml_and_json(tmp_path):
    import yaml

    cfg = configlib.load("quickstart")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    assert configlib.load("quickstart", tmp_path / "c.yaml") == cfg
    assert configlib.load("full", tmp_path / "c.json") == cfg


def test_config_file_overrides_preset(tmp_path):
    (tmp_path / "c.yaml").write_text("sampling: {n: 3}\ncascade:\n  stages:\n    - {strategy: correctness, votes: 2}\n")
    cfg = configlib.load("quickstart", tmp_path / "c.yaml")
    assert cfg.sampling.n == 3 and cfg.sampling.max_new_tokens == 64
    assert [(s.strategy, s.votes) for s in cfg.cascade.stages] == [("correctness", 2)]


@pytest.mark.parametrize("text, words", [
    ("sampling: {n_candidates: 3}", "field 'sampling.n_candidates': unknown key"),
    ("cascade: {stages: [{strategy: telepathy}]}", "unknown judge strategy"),
    ("cascade: {selection: best}", "selection must be"),
    ("- just a list", "top level must be a mapping"),
    ("sampling: {n: [1", "not valid YAML"),
])
def test_bad_config_is_named(tmp_path, text, words):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=words.replace("[", r"\[")):
        configlib.load("quickstart", tmp_path / "c.yaml")


def test_a_flow_default_method_follows_the_config():
    from selfimprove.config import requested
    from selfimprove.methods import default_method

    assert default_method("sdzero", requested("quickstart").to_dict()) == "sdzero"
    self_verified = requested("quickstart", overrides={"sdzero": {"reward": "self_verified"}}).to_dict()
    assert default_method("sdzero", self_verified) == "sdzero_self_verified"
    assert default_method("svd", self_verified) == "svd"
