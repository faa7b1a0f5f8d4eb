"""`ddro run` widens the beam to k, as `ddro search` does, and records the beam it used."""

import json

from ddro.cli import main
from ddro.runs import read_trec_run


def test_run_widens_the_beam_to_k_unless_told_not_to(beir_dir, tmp_path):
    base = ["run", "--collection", str(beir_dir), "--preset", "tiny", "--no-ddro", "--k", "20",  # tiny: beam 10
            "--index-epochs", "0", "--pseudo-epochs", "0", "--query-epochs", "0"]  # untrained: only the beam matters
    for flag, beams in ((None, 20), ("--no-beams-at-least-k", 10)):
        out = tmp_path / str(beams)
        assert main(base + ["--out", str(out)] + ([flag] if flag else [])) == 0
        assert json.loads((out / "metrics.json").read_text())["beams"] == beams
        assert max(len(ranking) for ranking in read_trec_run(out / "runs" / "sft.trec").values()) == beams
