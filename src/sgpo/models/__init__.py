"""Policies and tokenizers: tiny models built in code, local Hugging Face directories, LoRA, and the
models that ship as Python packages (SmolLM2 as a GGUF file). Nothing here downloads."""
