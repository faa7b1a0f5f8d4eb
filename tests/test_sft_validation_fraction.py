"""`ddro train sft --validation-fraction` sets the share of training queries SFT holds out (and
records it, so DDRO selects on the same queries); `ddro run` hands its one option to both phases."""

import json

from ddro.cli import main, build_parser, preset_from_args


def test_train_sft_holds_out_the_fraction_it_is_given(beir_dir, tmp_path):
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--encoder", "lsa:16", "--pq-m", "2",
                 "--pq-k", "8", "--out", str(tmp_path / "docids")]) == 0
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "docids"), "--preset", "tiny",
                 "--out", str(tmp_path / "sft"), "--validation-fraction", "0.5"]) == 0
    assert json.loads((tmp_path / "sft" / "ddro_model.json").read_text())["validation_fraction"] == 0.5


def test_run_gives_sft_the_validation_fraction_ddro_selects_on():
    parser = build_parser()
    run = parser.parse_args(["run", "--collection", "c", "--out", "o", "--validation-fraction", "0.1"])
    assert preset_from_args(run).validation_fraction == 0.1
    assert preset_from_args(parser.parse_args(["run", "--collection", "c", "--out", "o"])).validation_fraction == 0.2
