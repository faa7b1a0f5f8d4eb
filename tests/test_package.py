"""The top-level package: light to import, with the main objects one attribute away."""

import subprocess
import sys

import ddro


def test_import_is_light_and_names_resolve():
    code = "import sys, ddro; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    for name in ddro._LAZY:
        assert getattr(ddro, name).__name__ == name
