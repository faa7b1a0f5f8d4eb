"""`--resume` loads a finished SFT stage's weights, and an interrupted stage's checkpoint, strictly:
only tied keys may be absent."""

import json

import pytest
import torch

from ddro.errors import DdroError
from ddro.models import build_docid_model, get_preset
from ddro.training.sft import train_sft


def finished_stage(out, docid_model):
    """An SFT output folder whose first stage is done, with `docid_model`'s weights."""
    stage = out / "stages" / "index"
    docid_model.model.save_pretrained(stage / "final", safe_serialization=True)
    (stage / "done.json").write_text(json.dumps({"seconds": 1.0, "examples": 1}))


def test_resume_loads_a_stage_saved_without_its_tied_keys(tiny, tmp_path):
    collection, saved = tiny
    finished_stage(tmp_path, saved)
    preset = get_preset("tiny")
    fresh = build_docid_model(preset, saved.table, [d.text for d in collection.docs], seed=1)
    train_sft(fresh, {}, preset, tmp_path, resume=True)
    for (name, a), b in zip(saved.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("other,problem", [({"decoder_layers": 2}, "no weights for"), ({"d_ff": 32}, "other shape for")])
def test_resume_refuses_the_weights_of_another_model(tiny, tmp_path, other, problem):
    collection, saved = tiny
    finished_stage(tmp_path, saved)
    preset = get_preset("tiny", **other)
    model = build_docid_model(preset, saved.table, [d.text for d in collection.docs], seed=1)
    with pytest.raises(DdroError, match=rf"stages/index/final: --resume found weights of another model \({problem} '"):
        train_sft(model, {}, preset, tmp_path, resume=True)


def test_resume_refuses_a_checkpoint_of_another_model_mid_stage(tiny, tmp_path):
    collection, saved = tiny
    checkpoint = tmp_path / "stages" / "index" / "checkpoint-3"
    saved.model.save_pretrained(checkpoint, safe_serialization=True)
    (checkpoint / "trainer_state.json").write_text("{}")  # complete, as the Trainer writes this file last
    preset = get_preset("tiny", d_ff=32)
    model = build_docid_model(preset, saved.table, [d.text for d in collection.docs], seed=1)
    with pytest.raises(DdroError, match=r"checkpoint-3: --resume found weights of another model \(other shape for '"):
        train_sft(model, {"index": [("a passage", 0)]}, preset, tmp_path, resume=True)
