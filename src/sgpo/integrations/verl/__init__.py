"""SGPO in verl (0.9.x).

* :mod:`sgpo.integrations.verl.estimator` -- the ``sgpo`` advantage estimator as a pure tensor
  function (no verl import): verl's summed token rewards + group uids -> SGPO advantages.
* :mod:`sgpo.integrations.verl.reward` -- ``compute_score`` for ``reward.custom_reward_function``:
  verifies the outcome with sgpo's task verifiers and grades wrong responses with a step judge.
* :mod:`sgpo.integrations.verl.plugin` -- registers the estimator as ``algorithm.adv_estimator=sgpo``
  with verl's ``register_adv_est``; loaded in every process that imports verl through the
  ``verl.plugins`` entry point of the installed ``sgpo`` distribution.
* :mod:`sgpo.integrations.verl.data` -- writes sgpo tasks as verl parquet datasets.

Nothing here imports verl at package import time, so the main environment can import the
estimator and the reward function without verl installed. See docs/scale.md.
"""
