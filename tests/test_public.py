"""The public surface: users import the judge protocol, the grading step and the trainer from `sgpo`."""

import subprocess
import sys

import pytest

import sgpo


@pytest.mark.parametrize("name", sgpo.__all__)
def test_every_public_name_resolves_to_its_module_object(name):
    obj = getattr(sgpo, name)
    assert obj is getattr(sys.modules[sgpo._PUBLIC[name]], name)


def test_unknown_names_fail_and_import_stays_light():
    with pytest.raises(AttributeError, match="no attribute 'grad'"):
        sgpo.grad  # noqa: B018
    out = subprocess.run([sys.executable, "-c", "import sgpo, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
