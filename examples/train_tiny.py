"""An ordinary transformers training script: nothing in it knows about otel-energy.

A small BERT classifier built from a config (no download) trained on random tokens, on CPU.
Run it measured with either of:

    otel-energy run -- python examples/train_tiny.py
    opentelemetry-instrument python examples/train_tiny.py
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 256, (n, 32), generator=g)
        self.labels = self.ids[:, 0] % 2

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=64)
    a = ap.parse_args()
    config = BertConfig(
        vocab_size=256,
        hidden_size=a.hidden,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=4 * a.hidden,
        max_position_embeddings=64,
        num_labels=2,
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=a.epochs,
            per_device_train_batch_size=16,
            learning_rate=5e-4,
            logging_steps=20,
            eval_strategy="epoch",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=RandomTokens(a.samples, 0),
            eval_dataset=RandomTokens(128, 1),
        )
        trainer.train()


if __name__ == "__main__":
    main()
