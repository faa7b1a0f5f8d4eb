"""The training configs: `TrainingArguments` subclasses with ddro's defaults, validated on creation."""

import dataclasses

import pytest

from ddro.errors import OptionError
from ddro.models.presets import StageConfig
from ddro.training.ddro import DDROConfig
from ddro.training.sft import SFTConfig

# The keys `ddro_summary.json` has always recorded the phase's settings under.
RECORDED = ["beta", "loss_type", "nll_weight", "learning_rate", "encoder_lr_scale", "dropout", "epochs", "batch_size",
            "warmup_ratio", "max_grad_norm", "precompute_ref_log_probs", "per_query", "per_positive",
            "band_proportions", "bands", "negatives_run", "bm25_stemmer", "model_negatives", "pseudo_queries", "teacher", "teacher_positives",
            "validation_fraction", "validation_min_queries", "eval_steps", "patience", "validation_measure",
            "validation_beams", "seed"]


def test_the_record_keeps_its_keys_and_adds_only_changed_trainer_settings():
    record = DDROConfig().record()
    assert list(record) == RECORDED
    assert record["bands"] == ((1, 100), (101, 500), (501, 1000)) and record["band_proportions"] == (1.0, 1.0, 1.0)
    assert (record["epochs"], record["batch_size"], record["warmup_ratio"]) == (3.0, 16, 0.1)
    assert DDROConfig(output_dir="elsewhere", seed=4, eval_steps=4).record() == record | {"seed": 4, "eval_steps": 4}
    assert DDROConfig(gradient_accumulation_steps=2).record() == record | {"gradient_accumulation_steps": 2}


def test_sft_stages_take_the_presets_values_on_the_shared_settings(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    args = SFTConfig(gradient_accumulation_steps=2).for_stage("out/index", StageConfig(4, 3e-3, 64), seed=5)
    assert (args.output_dir, args.num_train_epochs, args.learning_rate, args.per_device_train_batch_size) == (
        "out/index", 4, 3e-3, 64)
    assert (args.seed, args.data_seed, args.gradient_accumulation_steps) == (5, 5, 2)
    assert (args.lr_scheduler_type.value, args.warmup_steps, args.weight_decay, args.save_strategy.value,
            args.save_steps, args.save_total_limit, args.train_sampling_strategy, args.report_to) == (
        "linear", 0.05, 0.01, "steps", 500, 1, "group_by_length", [])
    assert args.mixed_precision == "no"  # the model's precision applies, not accelerate's


@pytest.mark.parametrize("values,field", [
    ({"bands": "1-10,x"}, "bands"), ({"band_proportions": "1,1"}, "band_proportions"),
    ({"band_proportions": "0,0,0"}, "band_proportions"), ({"validation_measure": "nope@10"}, "validation_measure"),
    ({"bm25_stemmer": "klingon"}, "bm25_stemmer"), ({"loss_type": "square"}, "loss_type"),
    ({"per_query": 0}, "per_query"), ({"validation_fraction": 1.0}, "validation_fraction"), ({"bf16": True}, "bf16"),
])
def test_a_bad_setting_is_refused_by_its_field(values, field):
    with pytest.raises(OptionError) as error:
        DDROConfig(**values)
    assert error.value.field == field and str(error.value).startswith(f"{field} ")


def test_every_ddro_field_is_documented():
    undocumented = [f.name for cls in (DDROConfig, SFTConfig) for f in dataclasses.fields(cls)
                    if f.init and not f.metadata.get("help")]
    assert undocumented == []
