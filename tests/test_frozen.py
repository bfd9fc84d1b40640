"""prodqa.frozen: training from the cached output of the layers below train.lora_first_layer (1 of the tiny model's 2)."""

import pytest
import torch

from prodqa import train


def build(tiny_model, tiny_run, **update):
    p, tp, data, out = tiny_run
    return train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out), p.model_copy(update=update), tp)[0]


def first_batch(trainer) -> dict:
    return dict(next(iter(trainer.get_train_dataloader())))


def loss_and_grads(trainer, batch):
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.item(), {n: q.grad.clone() for n, q in trainer.model.named_parameters() if q.requires_grad}


def test_a_step_from_the_cached_layer_has_the_whole_models_loss_and_gradients(tiny_model, tiny_run):
    trainer = build(tiny_model, tiny_run)
    batch = first_batch(trainer)
    assert len(set(batch["attention_mask"].sum(1).tolist())) > 1  # rows of different lengths: the padding is covered
    cached = loss_and_grads(trainer, batch)
    assert type(trainer.model.get_decoder().layers[0]).__name__ == "PassThrough"
    trainer.frozen_layers.restore()
    trainer.frozen_layers = None
    assert type(trainer.model.get_decoder().layers[0]).__name__ == "LlamaDecoderLayer"
    whole = loss_and_grads(trainer, batch)
    assert cached[0] == pytest.approx(whole[0], rel=1e-5)
    assert cached[1].keys() == whole[1].keys() and cached[1]
    for name, grad in whole[1].items():
        torch.testing.assert_close(cached[1][name], grad, rtol=1e-4, atol=1e-7)


def test_each_example_runs_the_frozen_layers_once_and_the_budget_bounds_what_is_kept(tiny_model, tiny_run):
    trainer = build(tiny_model, tiny_run)
    batch = first_batch(trainer)
    rows = len(batch["input_ids"])
    for _ in range(3):
        loss_and_grads(trainer, batch)
    assert trainer.frozen_layers.computed == rows and len(trainer.frozen_layers.cache) == rows
    over_budget = build(tiny_model, tiny_run)
    over_budget.frozen_layers.max_bytes = 0
    for _ in range(3):
        loss_and_grads(over_budget, batch)
    assert over_budget.frozen_layers.computed == 3 * rows and not over_budget.frozen_layers.cache


@pytest.mark.parametrize("update", [{"frozen_cache_mib": 0}, {"lora_first_layer": 0}, {"packing": True},
                                    {"gradient_checkpointing": True}])
def test_runs_the_cache_would_change_keep_every_layer(tiny_model, tiny_run, update, capsys):
    trainer = build(tiny_model, tiny_run, **update)
    assert trainer.frozen_layers is None
    assert {type(layer).__name__ for layer in trainer.model.get_decoder().layers} == {"LlamaDecoderLayer"}
    assert "the frozen layers are recomputed every step" in capsys.readouterr().out


def test_a_run_with_the_cache_saves_the_adapter_a_run_without_it_saves(tiny_model, tiny_run, tmp_path):
    from safetensors.torch import load_file

    p, tp, data, _ = tiny_run
    adapters = []
    for mib in (4, 0):
        out = {k: str(tmp_path / str(mib) / k) for k in ("adapter", "merged", "checkpoints", "metrics")}
        train.train(train.Paths.of(base=tiny_model, data=data, **out), p.model_copy(update={"frozen_cache_mib": mib}), tp)
        adapters.append(load_file(tmp_path / str(mib) / "adapter" / "adapter_model.safetensors"))
    cached, whole = adapters
    assert cached.keys() == whole.keys() and any(".layers.1." in k for k in cached)
    for name, weight in whole.items():
        torch.testing.assert_close(cached[name], weight, rtol=1e-3, atol=1e-6)
    assert any(weight.abs().max() > 0 for name, weight in whole.items() if "lora_B" in name)  # it trained
