"""A small inference server whose request spans carry their energy, with no otel-energy code.

A FastAPI app serving a tiny GPT-2 built from a config (random weights, no download) that
generates ``max_new_tokens`` tokens per request. Run it under ``opentelemetry-instrument`` with
the FastAPI instrumentation installed and ``OTEL_PYTHON_ENERGY_SPANS=server``::

    OTEL_PYTHON_ENERGY_SPANS=server OTEL_SERVICE_NAME=tiny-llm \\
      opentelemetry-instrument python examples/inference_server.py --port 8000
    curl -s -X POST 127.0.0.1:8000/generate -H 'content-type: application/json' \\
      -d '{"prompt": "hello", "max_new_tokens": 16}'

Each ``POST /generate`` server span then carries ``otel_energy.energy`` (J), ``otel_energy.co2e``
(g) and ``otel_energy.energy_per_output_token`` (J): the app sets the GenAI semantic conventions'
``gen_ai.usage.output_tokens`` on the request span, which concurrent requests' energy is split by
(docs/any-span.md).
"""

from __future__ import annotations

import argparse
import threading

import torch
import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from pydantic import BaseModel
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB = 256  # bytes: the "tokenizer" is the prompt's UTF-8 bytes, no download needed


class Generate(BaseModel):
    prompt: str
    max_new_tokens: int = 16


def build_model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=256, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config).eval()


app = FastAPI()
model = build_model()
_one_at_a_time = threading.Lock()  # torch on 1-2 cores: batching is the server's job, not ours


@app.post("/generate")
def generate(req: Generate) -> dict[str, object]:
    ids = torch.tensor([list(req.prompt.encode())[-128:] or [0]])
    with _one_at_a_time, torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=req.max_new_tokens,
            min_new_tokens=req.max_new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    new = out[0, ids.shape[1] :].tolist()
    span = trace.get_current_span()  # the FastAPI instrumentation's request span
    span.set_attribute("gen_ai.usage.input_tokens", ids.shape[1])
    span.set_attribute("gen_ai.usage.output_tokens", len(new))
    return {"text": bytes(t % VOCAB for t in new).decode(errors="replace"), "tokens": len(new)}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
