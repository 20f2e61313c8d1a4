"""Training a step judge (``sgpo train-judge``): labelled arithmetic solutions (:mod:`.arith_data`,
from a warmed-up policy's samples or corrupted references, labelled by the rule judge) and a small
causal LM with a per-step correctness head (:mod:`.prm`), saved so :class:`sgpo.judges.prm.PRMJudge`
loads it. Above :mod:`sgpo.train` in the layers: it reuses the policy warm-up.
"""
