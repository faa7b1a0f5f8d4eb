"""IPO as TRL computes it: the DDRO trainer's loss on per-token average log-probabilities,
against the plain formula over an explicit decoder loop."""

import copy

import pytest
import torch

from ddro.training.ddro import DDROConfig, DDROTrainer, PairDataset, pair_collator
from ddro.training.negatives import Pair

from conftest import on_model_device
from test_ddro import plain_logp


@pytest.mark.parametrize("reference", ["copy", "precomputed"])
def test_trainer_ipo_loss_is_the_formula_on_per_token_averages(tiny, tmp_path, reference):
    collection, docid_model = tiny
    model = copy.deepcopy(docid_model)
    frozen = copy.deepcopy(model.model).eval()
    with torch.no_grad():  # a reference that differs from the policy
        for p in frozen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs = [Pair("q", collection.docs[i].title, i, (i + 7) % 30) for i in range(4)]
    dataset = PairDataset(pairs, model)
    batch = pair_collator(model)([dataset[i] for i in range(len(pairs))])
    beta = 0.4
    plain, sums = [], []
    with torch.no_grad():
        for row in range(len(pairs)):
            ids = batch["input_ids"][row][batch["attention_mask"][row] == 1]
            terms = []
            for labels in (batch["chosen_labels"][row], batch["rejected_labels"][row]):
                n = int((labels != -100).sum())
                policy, ref = plain_logp(model.model.eval(), ids, labels), plain_logp(frozen, ids, labels)
                terms.append((policy / n, ref / n))
                sums.append(float(ref))
            h = (terms[0][0] - terms[0][1]) - (terms[1][0] - terms[1][1])
            plain.append((h - 1 / (2 * beta)) ** 2)
    batch["ref_logps"] = torch.tensor(sums).view(-1, 2)  # what precompute_reference stores: sums
    trainer = DDROTrainer(model=model.model,
                          args=DDROConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, beta=beta,
                                          loss_type="ipo"),
                          train_dataset=dataset, data_collator=pair_collator(model),
                          ref_model=frozen if reference == "copy" else None)
    with torch.no_grad():
        loss = trainer.compute_loss(model.model, on_model_device(batch, model.model))
    assert float(loss) == pytest.approx(float(torch.stack(plain).mean()), rel=1e-5)
