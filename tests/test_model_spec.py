"""The one model resolver (rs2sam2_qgis.pipeline.model_spec.resolve_model): every spec kind, presets filled with
the part weights chosen in the model settings dialog (through model_core.load_model(path, base=...)), the refusal
of py: specs where code is not allowed, and one clear line for every bad spec."""
from __future__ import annotations

import sys

import pytest
import torch

from rs2sam2_qgis.pipeline import model_spec
from rs2sam2_qgis.pipeline.errors import InputError
from rs2sam2_qgis.pipeline.model_spec import ModelSpecError, resolve_model


def test_every_spec_kind_resolves(tmp_path, monkeypatch):
    import model_core

    assert resolve_model("demo").input_size > 0
    assert type(resolve_model("nano")).__name__ == "RS2SAM2"
    assert resolve_model("py:tests.colour_model:ColourModel", allow_code=True).name == "colour-test"
    saved = model_core.save_model(model_core.build_model("nano"), tmp_path / "nano.pt")
    assert resolve_model(str(saved)).cfg.to_dict() == model_core.build_model("nano").cfg.to_dict()
    # a release folder goes to model_core.load_model as it is (model_core reads the authors' layout)
    seen = []
    monkeypatch.setattr(model_core, "load_model", lambda path, **kw: seen.append(str(path)) or "release")
    release = tmp_path / "release"
    release.mkdir()
    assert resolve_model(str(release)) == "release" and seen == [str(release)]


def test_bad_specs_are_one_actionable_line(tmp_path):
    cases = {
        "": "no model chosen",
        "no-such-model": "neither a preset (demo, ",
        "/no/such/model.pt": "model checkpoint not found: /no/such/model.pt",
        "py:colour_model": "write py:module:callable",
        "py:tests.colour_model:NoSuchModel": "cannot load model factory 'tests.colour_model:NoSuchModel'",
        str(tmp_path): "is not a model checkpoint rs2sam2 knows",  # a folder that is no release
    }
    for spec, needle in cases.items():
        with pytest.raises(InputError) as err:
            resolve_model(spec, allow_code=True)
        assert needle in str(err.value) and "\n" not in str(err.value), (spec, str(err.value))


def test_py_spec_is_refused_without_allow_code_and_imports_nothing(tmp_path, monkeypatch):
    mark = tmp_path / "imported"
    monkeypatch.setenv("RS2SAM2_IMPORT_MARK", str(mark))
    monkeypatch.delitem(sys.modules, "tests.records_its_import", raising=False)
    with pytest.raises(ModelSpecError, match="names Python code to run") as err:
        resolve_model("py:tests.records_its_import:model")
    assert "command line" in str(err.value) and "Model settings" in str(err.value)
    assert "tests.records_its_import" not in sys.modules and not mark.exists()
    # typed by a person (allow_code): the same spec runs, and its import is seen
    assert resolve_model("py:tests.records_its_import:model", allow_code=True).name == "colour-test"
    assert mark.read_text() == "tests.records_its_import"
    del sys.modules["tests.records_its_import"]  # later tests check that refusals import it nowhere


def test_describe_names_each_kind():
    assert model_spec.describe("demo") == "demo model"
    assert model_spec.describe("/x/model.pt") == "checkpoint model.pt"
    assert model_spec.describe("nano") == "preset nano"
    assert model_spec.describe("py:pkg.mod:build") == "model from pkg.mod:build"


def test_preset_takes_the_sam2_weights_from_settings(tmp_path):
    from model_core.sam2_weights import sam2_key_map

    torch.manual_seed(0)
    donor = resolve_model("nano")
    key_map = sam2_key_map(donor)  # {stock SAM2 key: our key}
    ours = donor.state_dict()
    path = tmp_path / "sam2_nano.pt"
    torch.save({"model": {stock: ours[our].clone() for stock, our in key_map.items()}}, path)

    torch.manual_seed(1)
    model = resolve_model("nano", weights={"sam2": str(path), "beit3": "/not/used/by/a/clip/preset.pth"})
    filled = model.state_dict()
    some = next(iter(key_map.values()))
    assert torch.equal(filled[some], ours[some])

    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"junk": torch.zeros(1)}}, bogus)
    with pytest.raises(ModelSpecError, match="do not fit preset 'nano'"):
        resolve_model("nano", weights={"sam2": str(bogus)})
