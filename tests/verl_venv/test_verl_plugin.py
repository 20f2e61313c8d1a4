"""verl's plugin mechanism registers the ``sgpo`` estimator in a fresh process that never imports
sgpo itself -- what a Ray worker gets from ``import verl``."""

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
assert not any(m == "sgpo" or m.startswith("sgpo.") for m in sys.modules)
import verl
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
fn = get_adv_estimator_fn("sgpo")
print(json.dumps({"module": fn.__module__, "name": fn.__name__}))
"""


def probe(**env):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    run_env.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=run_env, capture_output=True, text=True, timeout=300)
    return out


def test_entry_point_registers_sgpo_on_import_verl():
    out = probe()
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "module": "sgpo.integrations.verl.plugin", "name": "compute_sgpo_advantage"}


def test_external_modules_variable_works_without_the_entry_point():
    out = probe(VERL_USE_EXTERNAL_PLUGINS="none", VERL_USE_EXTERNAL_MODULES="sgpo.integrations.verl.plugin")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["module"] == "sgpo.integrations.verl.plugin"


def test_without_any_plugin_verl_does_not_know_sgpo():
    """The control: the registration really comes from the plugin."""
    out = probe(VERL_USE_EXTERNAL_PLUGINS="none")
    assert out.returncode != 0 and "Unknown advantage estimator" in out.stderr


def test_a_ray_worker_gets_the_estimator_from_import_verl():
    """A real Ray worker process (what verl's trainer, reward and rollout actors run in): it has not
    imported sgpo, imports verl, and finds ``sgpo`` registered."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=80 * 1024 * 1024)
    try:
        @ray.remote
        def probe():
            import sys

            had_sgpo = any(m == "sgpo" or m.startswith("sgpo.") for m in sys.modules)
            import verl  # noqa: F401
            from verl.trainer.ppo.core_algos import get_adv_estimator_fn

            return had_sgpo, get_adv_estimator_fn("sgpo").__module__, os.getpid()

        had_sgpo, module, pid = ray.get(probe.remote(), timeout=240)
    finally:
        ray.shutdown()
    assert (had_sgpo, module) == (False, "sgpo.integrations.verl.plugin") and pid != os.getpid()


METHOD_PROBE = """
import json
import verl  # noqa: F401 - imports the modules of VERL_USE_EXTERNAL_MODULES
from sgpo.integrations.verl.estimator import verl_method
from sgpo.errors import ConfigError
try:
    print(json.dumps({"method": verl_method("my_half").name}))
except ConfigError as e:
    print(json.dumps({"error": str(e)}))
"""

MY_METHODS = """
import torch
from sgpo.core import METHODS, MethodOutput, ShapingParams, shape_graded

@METHODS.register("my_half", judges=True, reward_only=True)
def my_half(outcomes, rts, verdict_ok, params=ShapingParams(), **_):
    out = shape_graded(outcomes, rts / 2, verdict_ok, params)
    return MethodOutput(out.rewards, out.advantages, torch.ones(len(outcomes), dtype=torch.bool), out.known)
"""


def test_a_method_registered_in_the_users_module_reaches_a_fresh_verl_process(tmp_path):
    """docs/scale.md's recipe: verl's module hook imports the user's registration in a process that never
    ran the user's script (what verl's driver and Ray workers are); without it the method is unknown."""
    (tmp_path / "my_methods.py").write_text(MY_METHODS)

    def run(modules):
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
        env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]), VERL_USE_EXTERNAL_MODULES=modules)
        out = subprocess.run([sys.executable, "-c", METHOD_PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert run("sgpo.integrations.verl.plugin,my_methods") == {"method": "my_half"}
    assert "'my_half' is not a registered method" in run("sgpo.integrations.verl.plugin")["error"]
