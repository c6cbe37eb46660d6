"""An unmodified Lightning user script: a tiny regression ``LightningModule`` trained on CPU.

Importable (``tiny_module``, ``loaders``) by the tests; run as a script it trains
``--epochs`` epochs with validation, under a user span ``experiment``, and prints a summary line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset


class TinyRegressor(LightningModule):
    """y = x . w on 8 features: one linear layer, MSE loss, SGD."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def tiny_module(seed: int = 0) -> TinyRegressor:
    torch.manual_seed(seed)
    return TinyRegressor()


def loaders(
    n_train: int = 64, n_val: int = 16, batch_size: int = 8
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 1, generator=g)

    def data(n: int) -> TensorDataset:
        x = torch.randn(n, 8, generator=g)
        return TensorDataset(x, x @ w)

    return (
        DataLoader(data(n_train), batch_size=batch_size),
        DataLoader(data(n_val), batch_size=batch_size),
    )


def quiet_trainer(**kwargs: Any) -> Trainer:
    """A CPU trainer without progress bar, model summary, checkpoints or default logger."""
    defaults: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return Trainer(**{**defaults, **kwargs})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hand-added", action="store_true", help="also add our callback by hand")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    from opentelemetry import trace

    callbacks: list[Any] = []
    if args.hand_added:
        from otel_energy.integrations.lightning import LightningEnergyCallback

        callbacks.append(LightningEnergyCallback())
    train, val = loaders()
    with trace.get_tracer("user").start_as_current_span("experiment"):
        trainer = quiet_trainer(
            max_epochs=args.epochs,
            callbacks=callbacks,
            strategy=args.strategy,
            devices=args.devices,
        )
        names = [type(c).__name__ for c in trainer.callbacks]
        trainer.fit(tiny_module(), train, val)
    print(json.dumps({"global_step": trainer.global_step, "callbacks": names}))


if __name__ == "__main__":
    main()
