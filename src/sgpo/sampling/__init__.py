"""Sampling G responses per prompt with their token log-probs: the batch layout, transformers'
``generate`` and the KV-cache sampler it can be swapped for (``rollout.sampler``)."""
