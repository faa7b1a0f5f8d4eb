"""What trie-constrained beam search costs on top of the model: ms per query, four ways.

    python benchmarks/decoding.py --json                                  # the default CPU preset's model
    python benchmarks/decoding.py --model t5-small --dtype bf16 --json    # on a GPU

One seeded model and a docid table of `--docids` random PQ-style docids (4 x 256 codes, as the
`cpu` preset's docids), queries of random words, the same beams and docid length for every method:

- `unconstrained_hf`: transformers' `generate` beam search without constraints, forced to the
  docids' length (`min_new_tokens`) so that it runs as many steps as the others (a);
- `unconstrained_ours`: `ddro.decoding.beam_search` without a trie: the same loop, no constraint;
- `ddro`: `beam_search` with the `DocidTrie` (b), what `GenerativeRetriever` runs;
- `prefix_fn`: transformers' `generate(prefix_allowed_tokens_fn=...)` over a dict trie, the usual
  way (c).

Per beam width it prints the ms per query of each, the ratios `ddro / unconstrained_hf` (b/a),
`ddro / unconstrained_ours` and `prefix_fn / ddro` (c/b), and whether (b) and (c) returned the
same docids in the same order for every query. Methods alternate batch by batch so that machine
noise hits them alike; one warm-up batch each is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from ddro.decoding import DocidTrie, beam_search
from ddro.decoding.reference import dict_trie, generate_constrained
from ddro.docids import DocidTable
from ddro.models import build_docid_model, get_preset

WORDS = ("wing lift drag flow boundary layer shock wave pressure heat transfer plate cylinder laminar "
         "turbulent supersonic hypersonic nozzle jet mach number slender body buckling shell stress "
         "vibration panel flutter velocity profile skin friction temperature").split()

MODELS = {
    # The default CPU preset's model: MiniLM encoder (6 x 384), one-layer BERT decoder over docid tokens.
    "cpu": lambda: get_preset("cpu"),
    # t5-small's shape (6 + 6 layers, d_model 512, d_ff 2048, 8 heads), random weights.
    "t5-small": lambda: get_preset("t5-scratch", d_model=512, d_ff=2048, encoder_layers=6, decoder_layers=6,
                                   heads=8, tokenizer_vocab=8000),
}


def random_pq_table(n: int, m: int, k: int, seed: int) -> DocidTable:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, size=(n, m)) + np.arange(m) * k
    vocab = [f"<pq_{j}_{c}>" for j in range(m) for c in range(k)]
    return DocidTable("pq", [f"d{i}" for i in range(n)], codes, vocab, new_tokens=True)


def random_queries(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 13)))) for _ in range(n)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docids", type=int, default=100_000)
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", choices=sorted(MODELS), default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    preset = MODELS[args.model]()
    table = random_pq_table(args.docids, preset.docid_plan.docids["pq_m"], preset.docid_plan.docids["pq_k"], args.seed)
    texts = random_queries(max(args.queries, 2000), args.seed)
    docid_model = build_docid_model(preset, table, texts, seed=args.seed)
    model = docid_model.model.to(device, dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32).eval()
    sequences = docid_model.docid_sequences()
    trie = DocidTrie(sequences, docid_model.decoder_vocab_size)
    tree = dict_trie(sequences)
    length = sequences.shape[1]
    start_id, eos = docid_model.decoder_start_token_id, docid_model.eos_token_id
    pad = model.config.pad_token_id or 0
    batches = [texts[i:i + args.batch_size] for i in range(0, args.queries, args.batch_size)]

    def run(method: str, inputs: dict, beams: int):
        if method == "unconstrained_hf":
            return model.generate(**inputs, num_beams=beams, num_return_sequences=beams, max_new_tokens=length,
                                  min_new_tokens=length, length_penalty=0.0, early_stopping=False, do_sample=False,
                                  decoder_start_token_id=start_id, eos_token_id=eos, pad_token_id=pad)
        if method == "unconstrained_ours":
            return beam_search(model, inputs, num_beams=beams, max_new_tokens=length, decoder_start_token_id=start_id)
        if method == "ddro":
            return beam_search(model, inputs, num_beams=beams, max_new_tokens=length, decoder_start_token_id=start_id,
                               trie=trie)
        return generate_constrained(model, inputs, sequences=sequences, num_beams=beams, max_new_tokens=length,
                                    decoder_start_token_id=start_id, eos_token_id=eos, pad_token_id=pad, trie=tree)

    methods = ["unconstrained_hf", "unconstrained_ours", "ddro", "prefix_fn"]
    rows = []
    for beams in args.beams:
        seconds = dict.fromkeys(methods, 0.0)
        same = 0
        for b, batch in enumerate([batches[0]] + batches):
            inputs = {name: t.to(device) for name, t in docid_model.encode(batch).items()}
            results = {}
            with torch.inference_mode():
                for method in methods:
                    synchronize(device)
                    start = time.perf_counter()
                    results[method] = run(method, inputs, beams)
                    synchronize(device)
                    if b > 0:  # batch 0 warms up
                        seconds[method] += time.perf_counter() - start
            if b > 0:
                ours, theirs = results["ddro"], results["prefix_fn"]
                same += int(((ours.sequences == theirs.sequences).all(-1).all(-1)
                             & torch.isclose(ours.scores, theirs.scores, atol=1e-3).all(-1)).sum())
        ms = {m: 1000 * s / args.queries for m, s in seconds.items()}
        rows.append({
            "beams": beams, **{f"{m}_ms_per_query": round(v, 2) for m, v in ms.items()},
            "b_over_a": round(ms["ddro"] / ms["unconstrained_hf"], 3),
            "b_over_unconstrained_ours": round(ms["ddro"] / ms["unconstrained_ours"], 3),
            "c_over_b": round(ms["prefix_fn"] / ms["ddro"], 2),
            "identical_queries": same, "queries": args.queries, "identical": same == args.queries,
        })
        if not args.json:
            print(rows[-1], flush=True)
    report = {
        "model": args.model, "dtype": args.dtype, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "docids": args.docids, "docid_length": length - 1,
        "parameters": sum(p.numel() for p in model.parameters()), "batch_size": args.batch_size,
        "torch": torch.__version__, "rows": rows,
    }
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
