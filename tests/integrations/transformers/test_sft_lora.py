"""A subclass Trainer real users fine-tune with: TRL's SFTTrainer with a PEFT LoRA adapter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from tests.support.hf_helpers import GPU_W, Telemetry, fake_gpu_sampler_factory
from tests.support.step_spans import STEP_NAMES, steps_covered

WORDS = [
    "the", "a", "model", "learns", "small", "data", "fast", "slow",
    "energy", "joule", "carbon", "grid", "step", "epoch", "run",
]  # fmt: skip


def tiny_tokenizer() -> Any:
    """A word-level tokenizer built in memory (no hub download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def tiny_causal_lm(vocab_size: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def test_sft_trainer_with_lora_adapter(tmp_path: Path, tel: Telemetry) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    tok = tiny_tokenizer()
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(8)) for i in range(32)]
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_length=16,
        num_train_epochs=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    trainer = SFTTrainer(
        model=tiny_causal_lm(len(tok)),
        args=args,
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=tok,
        callbacks=[cb],
        peft_config=LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        ),
    )
    assert any("lora" in n for n, _ in trainer.model.named_parameters())
    trainer.train()
    spans = tel.finished()
    assert Counter(s.name for s in spans if s.name not in STEP_NAMES) == {"train": 1, "epoch": 2}
    # each step in its own span (two sample intervals or more) or its group's (shorter)
    assert steps_covered((s.name, s.attributes) for s in spans) == list(range(1, 9))
    index = {s.context.span_id: s for s in spans}
    for s in spans:
        assert s.status.status_code != StatusCode.ERROR
        duration = (s.end_time - s.start_time) / 1e9
        assert s.attributes["otel_energy.energy"] == pytest.approx(GPU_W * duration, abs=0.005)
        if s.name in STEP_NAMES:
            assert index[s.parent.span_id].name == "epoch"
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.model_type"] == "llama"
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all("otel_energy/energy_j" in h for h in logged)
