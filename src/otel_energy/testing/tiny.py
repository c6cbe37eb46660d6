"""A real, tiny transformers model trained on CPU: built from a config, no hub download.

A 2-layer, hidden-size-32 BERT classifier on random token ids trains at roughly 8-10 ms per step on
a 2-core machine: a realistic worst case for per-step overhead.
"""

from __future__ import annotations

from typing import Any


class RandomTokens:
    """A map-style dataset of random token ids with a learnable label (parity of the first id)."""

    def __init__(self, n: int, seq_len: int = 16, vocab: int = 128, seed: int = 0) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, seq_len), generator=g)
        self.labels = self.ids[:, 0] % 2

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_model(seed: int = 0) -> Any:
    """BertForSequenceClassification: 2 layers, hidden 32, 2 heads, vocab 128."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(  # type: ignore[call-arg]  # num_labels is a PretrainedConfig kwarg
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def training_args(output_dir: str, **overrides: Any) -> Any:
    """Quiet CPU TrainingArguments; ``overrides`` win."""
    from transformers import TrainingArguments

    kwargs: dict[str, Any] = dict(
        output_dir=output_dir,
        num_train_epochs=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=42,
        dataloader_num_workers=0,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def tiny_trainer(
    output_dir: str,
    n_train: int = 64,
    n_eval: int = 16,
    callbacks: list[Any] | None = None,
    trainer_cls: Any = None,
    **arg_overrides: Any,
) -> Any:
    """A Trainer over the tiny model and random data."""
    from transformers import Trainer

    cls = trainer_cls or Trainer
    return cls(
        model=tiny_model(),
        args=training_args(output_dir, **arg_overrides),
        train_dataset=RandomTokens(n_train),
        eval_dataset=RandomTokens(n_eval, seed=1),
        callbacks=callbacks,
    )
