"""SGPO in verl (0.9.x).

* :mod:`sgpo.integrations.verl.estimator` -- the ``sgpo`` advantage estimator as a pure tensor
  function (no verl import): verl's summed token rewards + group uids -> SGPO advantages.
* :mod:`sgpo.integrations.verl.reward` -- ``compute_score`` / ``compute_score_async`` for
  ``reward.custom_reward_function``: verifies the outcome with sgpo's task verifiers and grades wrong
  responses with a step judge (a judge of the user's, or the judge model verl hosts);
  :mod:`sgpo.integrations.verl.batching` gathers concurrent calls' judge requests into batches.
* :mod:`sgpo.integrations.verl.manager` -- ``SGPORewardManager`` (opt-in): verl's naive reward
  manager that judges only the wrong responses of all-negative groups (siblings meet at a Ray actor).
* :mod:`sgpo.integrations.verl.plugin` -- registers the estimator as ``algorithm.adv_estimator=sgpo``
  with verl's ``register_adv_est``; loaded in every process that imports verl through the
  ``verl.plugins`` entry point of the installed ``sgpo`` distribution; it also wraps verl's
  ``validate_config`` (start-up refusals) and the v1 trainer's multi-output advantage step.
* :mod:`sgpo.integrations.verl.data` -- writes sgpo tasks as verl parquet datasets.

Nothing here imports verl at package import time, so the main environment can import the
estimator and the reward function without verl installed. See docs/scale.md.
"""
