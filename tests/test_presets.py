"""Presets: every value as it was before presets were composed from parts; the composition itself."""

import json
from dataclasses import fields, replace

import pytest

from ddro.models.presets import CPU, PRESETS, T5_SCRATCH_NETWORK, DocidPlan, NetworkConfig, get_preset

# Every preset's `to_dict()` (what `config.json` records) as the flat presets wrote it: the oracle.
RECORDED = {
    "tiny": {"architecture": "t5-scratch",
             "beams": 10,
             "d_ff": 64,
             "d_model": 32,
             "decoder_layers": 1,
             "docid_init": None,
             "docids": {"encoder": "lsa:16", "pq_k": 8, "pq_m": 2, "scheme": "pq"},
             "encoder_layers": 1,
             "encoder_lr_scale": 0.03,
             "heads": 2,
             "large_collection": 0,
             "large_docids": None,
             "max_input_tokens": 32,
             "model": "",
             "name": "tiny",
             "passage_words": 40,
             "passages_per_doc": 2,
             "precision": "fp32",
             "pseudo_queries_per_doc": 2,
             "pseudo_teacher": None,
             "pseudo_teacher_targets": 1,
             "query_repeats": 1,
             "replay": 0.0,
             "seed": 0,
             "stages": {"index": {"batch_size": 32, "epochs": 1, "learning_rate": 0.003},
                        "pseudo": {"batch_size": 32, "epochs": 1, "learning_rate": 0.003},
                        "query": {"batch_size": 32, "epochs": 1, "learning_rate": 0.003}},
             "tie_output": True,
             "tokenizer_vocab": 500,
             "trainable_encoder_layers": 2,
             "validation_fraction": 0.2},
    "cpu": {"architecture": "minilm-warm",
            "beams": 100,
            "d_ff": 1024,
            "d_model": 256,
            "decoder_layers": 1,
            "docid_init": None,
            "docids": {"encoder": "minilm", "pq_k": 256, "pq_m": 4, "scheme": "pq"},
            "encoder_layers": 4,
            "encoder_lr_scale": 0.03,
            "heads": 4,
            "large_collection": 3000,
            "large_docids": {"encoder": "minilm", "rq_k": 256, "rq_levels": 4, "scheme": "rq"},
            "max_input_tokens": 64,
            "model": "",
            "name": "cpu",
            "passage_words": 40,
            "passages_per_doc": 10,
            "precision": "fp32",
            "pseudo_queries_per_doc": 10,
            "pseudo_teacher": None,
            "pseudo_teacher_targets": 1,
            "query_repeats": 3,
            "replay": 1.0,
            "seed": 0,
            "stages": {"index": {"batch_size": 64, "epochs": 0, "learning_rate": 0.001},
                       "pseudo": {"batch_size": 64, "epochs": 4, "learning_rate": 0.001},
                       "query": {"batch_size": 32, "epochs": 3, "learning_rate": 0.001}},
            "tie_output": True,
            "tokenizer_vocab": 8000,
            "trainable_encoder_layers": 2,
            "validation_fraction": 0.2},
    "t5-scratch": {"architecture": "t5-scratch",
                   "beams": 100,
                   "d_ff": 1024,
                   "d_model": 256,
                   "decoder_layers": 2,
                   "docid_init": None,
                   "docids": {"encoder": "minilm", "pq_k": 256, "pq_m": 4, "scheme": "pq"},
                   "encoder_layers": 4,
                   "encoder_lr_scale": 0.03,
                   "heads": 4,
                   "large_collection": 3000,
                   "large_docids": {"encoder": "minilm", "rq_k": 256, "rq_levels": 4, "scheme": "rq"},
                   "max_input_tokens": 64,
                   "model": "",
                   "name": "t5-scratch",
                   "passage_words": 40,
                   "passages_per_doc": 10,
                   "precision": "fp32",
                   "pseudo_queries_per_doc": 10,
                   "pseudo_teacher": None,
                   "pseudo_teacher_targets": 1,
                   "query_repeats": 3,
                   "replay": 1.0,
                   "seed": 0,
                   "stages": {"index": {"batch_size": 64, "epochs": 0, "learning_rate": 0.001},
                              "pseudo": {"batch_size": 64, "epochs": 4, "learning_rate": 0.001},
                              "query": {"batch_size": 32, "epochs": 3, "learning_rate": 0.001}},
                   "tie_output": True,
                   "tokenizer_vocab": 8000,
                   "trainable_encoder_layers": 2,
                   "validation_fraction": 0.2},
    "t5-base": {"architecture": "pretrained",
                "beams": 100,
                "d_ff": 1024,
                "d_model": 256,
                "decoder_layers": 1,
                "docid_init": None,
                "docids": {"encoder": "hf:sentence-transformers/gtr-t5-base",
                           "pq_k": 256,
                           "pq_m": 24,
                           "scheme": "pq"},
                "encoder_layers": 4,
                "encoder_lr_scale": 0.03,
                "heads": 4,
                "large_collection": 0,
                "large_docids": None,
                "max_input_tokens": 128,
                "model": "t5-base",
                "name": "t5-base",
                "passage_words": 40,
                "passages_per_doc": 10,
                "precision": "bf16",
                "pseudo_queries_per_doc": 10,
                "pseudo_teacher": None,
                "pseudo_teacher_targets": 1,
                "query_repeats": 1,
                "replay": 0.0,
                "seed": 0,
                "stages": {"index": {"batch_size": 128, "epochs": 10, "learning_rate": 0.001},
                           "pseudo": {"batch_size": 128, "epochs": 20, "learning_rate": 0.001},
                           "query": {"batch_size": 128, "epochs": 10, "learning_rate": 0.001}},
                "tie_output": True,
                "tokenizer_vocab": 8000,
                "trainable_encoder_layers": 2,
                "validation_fraction": 0.2},
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_every_preset_keeps_every_value(name):
    # JSON text, so that an epoch count turned from 0 into 0.0 fails as well.
    assert json.dumps(PRESETS[name].to_dict(), sort_keys=True) == json.dumps(RECORDED[name], sort_keys=True)


def test_presets_are_the_recorded_ones_in_order():
    assert list(PRESETS) == ["tiny", "cpu", "t5-scratch", "t5-base"]


def test_t5_scratch_is_the_cpu_preset_with_a_t5_network():
    t5 = PRESETS["t5-scratch"]
    assert t5 == replace(CPU, name="t5-scratch", network=T5_SCRATCH_NETWORK)
    assert t5.architecture == "t5-scratch" and CPU.architecture == "minilm-warm"


def test_parts_do_not_share_a_setting_name():
    names = [f.name for part in (NetworkConfig, DocidPlan) for f in fields(part)]
    names += [f.name for f in fields(CPU) if f.name not in ("network", "docid_plan")]
    assert len(names) == len(set(names)) == len(CPU.to_dict())


def test_settings_reach_the_part_that_holds_them():
    preset = get_preset("tiny", seed=3, tie_output=False, d_model=64, precision="bf16", replay=0.5)
    assert preset.seed == 3 and preset.replay == 0.5
    assert preset.network.tie_output is False and preset.network.d_model == 64 and preset.precision == "bf16"
    assert get_preset("tiny").to_dict() == RECORDED["tiny"]  # the registered preset is unchanged
    with pytest.raises(TypeError):
        get_preset("tiny", no_such_setting=1)


def test_a_model_makes_a_pretrained_preset_of_it():
    preset = get_preset("cpu", model="some/checkpoint")
    assert (preset.architecture, preset.model) == ("pretrained", "some/checkpoint")
    assert preset.docid_plan == CPU.docid_plan and preset.stages == CPU.stages


def test_docid_options_follow_the_size_rule_and_the_architecture():
    assert CPU.docid_options(3000)["scheme"] == "pq" and CPU.docid_options(3001)["scheme"] == "rq"
    assert CPU.docid_options(10, "rq") == {"scheme": "rq", "pq_m": 4, "pq_k": 256, "encoder": "minilm",
                                           "rq_levels": 4, "rq_k": 256}
    assert "tokenizer" not in CPU.docid_options(10, "title")
    pretrained = get_preset("cpu", model="some/checkpoint")
    assert pretrained.docid_options(10, "title")["tokenizer"] == "some/checkpoint"
    assert "tokenizer" not in pretrained.docid_options(10, "pq")
