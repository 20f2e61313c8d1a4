"""Files in and out: every ``--out`` (checked before work, written atomically), config files read into
pydantic sections, JSON/JSONL rows read with their line numbers. No model, no tensor."""
