"""SGPO inside other trainers: ``trl`` (SGPOTrainer for TRL) and ``verl`` (advantage estimator, reward function, plugin)."""
