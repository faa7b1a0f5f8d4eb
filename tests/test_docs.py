"""The docs cannot drift: result tables match their files, docs/cli.md matches the parser, the
README keeps its first commands and its length, its Python block runs, and every link resolves."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import write_beir

ROOT = Path(__file__).resolve().parents[1]
TWO_COMMANDS = [
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . && "
    "ddro run --collection ../shared/data/cranfield --out runs/cranfield --overwrite",
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e '.[dev,serve,pyterrier]' && "
    "python -m pytest",
]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)


@pytest.fixture
def docs_copy(tmp_path):
    """README.md, docs/ and benchmarks/results/ copied, for renderers to write into."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def test_committed_result_tables_match_their_files():
    assert load_script("render_results").main(["--check"]) == 0


def test_render_check_fails_when_a_result_file_changes_and_rendering_repairs_it(docs_copy, capsys):
    render = load_script("render_results")
    path = docs_copy / "benchmarks" / "results" / "decoding-cpu-2core.json"
    report = json.loads(path.read_text())
    report["rows"][0]["ddro_ms_per_query"] = 123.45
    path.write_text(json.dumps(report))
    assert render.main(["--check"], root=docs_copy) == 1
    assert "stale tables" in capsys.readouterr().err
    assert render.main([], root=docs_copy) == 0
    assert "| 123.45 |" in (docs_copy / "docs" / "decoding.md").read_text()
    assert render.main(["--check"], root=docs_copy) == 0


def test_render_includes_every_run_folder_with_its_command(docs_copy):
    render = load_script("render_results")
    run = docs_copy / "benchmarks" / "results" / "runs" / "zz-extra"
    run.mkdir(parents=True)
    systems = {name: {"RR@10": rr, "nDCG@10": 0.2, "R@10": 0.3, "R@100": 0.4, "Success@1": 0.5, "Success@10": 0.6}
               for name, rr in (("bm25", 0.2234), ("sft", 0.1234))}
    tests = {"RR@10": {"t_test_p": None, "randomization_p": 0.0004, "mean_difference": 0.01},
             "nDCG@10": {"t_test_p": 0.5, "randomization_p": 0.5, "mean_difference": 0.0}}
    metrics = {"collection": "npl", "split": {"rule": "sha1(1/3)", "train_queries": 0, "test_queries": 7},
               "systems": systems, "significance": {"sft_vs_bm25": tests}, "timings": {"sft_seconds": 3.0}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text("{}")
    (run / "command.txt").write_text("ddro run --collection npl --out runs/zz-extra --test-fraction 1.0\n")
    assert render.main([], root=docs_copy) == 0
    readme = (docs_copy / "README.md").read_text()
    results = (docs_copy / "docs" / "results.md").read_text()
    assert "| NPL, bare corpus (7) | RR@10 | **0.223** | n/a | 0.123 | n/a |" in readme
    assert "ddro run --collection npl --out runs/zz-extra --test-fraction 1.0" in readme
    assert "| NPL, bare corpus (7) | SFT | 0.123 | 0.200 | 0.300 | 0.400 | 0.500 | 0.600 |" in results
    assert "| NPL, bare corpus (7) | sft_vs_bm25 | < 0.001 / n/a | 0.500 / 0.500 | +0.010 |" in results


def test_render_refuses_an_unknown_table(docs_copy):
    render = load_script("render_results")
    with open(docs_copy / "docs" / "results.md", "a") as fh:
        fh.write("\n<!-- table:no-such-table -->\n<!-- /table -->\n")
    with pytest.raises(SystemExit, match="no-such-table"):
        render.main(["--check"], root=docs_copy)


def test_cli_reference_matches_the_parser(docs_copy, capsys):
    reference = load_script("cli_reference")
    assert reference.main(["--check"]) == 0
    text = (docs_copy / "docs" / "cli.md").read_text()
    for heading in ("## `ddro`", "### `ddro run`", "#### `ddro train sft`", "#### `ddro train ddro`"):
        assert heading in text
    assert "`--beta BETA`" in text and "`--ddro`, `--no-ddro`" in text
    (docs_copy / "docs" / "cli.md").write_text(text.replace("`--beta BETA`", "`--beta B`"))
    assert reference.main(["--check"], root=docs_copy) == 1
    assert "stale" in capsys.readouterr().err
    assert reference.main([], root=docs_copy) == 0
    assert (docs_copy / "docs" / "cli.md").read_text() == text


def test_readme_is_short_and_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert code_blocks(text, "bash")[0].splitlines() == TWO_COMMANDS
    assert text.index("```bash") == text.index("```")


def test_readme_python_block_searches_a_query_of_ones_own(tmp_path, monkeypatch, capsys):
    from ddro.collections import load_collection
    from ddro.docids import DocidConfig, build_docids
    from ddro.models import build_docid_model, get_preset

    collection_dir = write_beir(tmp_path / "collection")
    preset = get_preset("tiny")
    collection = load_collection(collection_dir)
    table = build_docids(collection, DocidConfig(**preset.docid_plan.docids))
    build_docid_model(preset, table, [d.text for d in collection.docs], seed=0).save(tmp_path / "model")
    block = code_blocks((ROOT / "README.md").read_text(), "python")[0]
    assert '"../shared/data/cranfield"' in block and '"runs/cranfield/model-ddro"' in block
    block = block.replace('"../shared/data/cranfield"', repr(str(collection_dir)))
    block = block.replace('"runs/cranfield/model-ddro"', repr(str(tmp_path / "model")))
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6  # five results for the own query, then the evaluation
    assert "'RR@10'" in lines[-1]


def test_every_relative_link_and_anchor_resolves():
    def anchors(path: Path) -> set[str]:
        headings = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
        slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
        return slugs | set(re.findall(r'<a id="([^"]+)">', path.read_text()))

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
