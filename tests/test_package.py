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


def test_nothing_loads_pickle_or_remote_code():
    """Safe loading: weights are safetensors, arrays npy without pickle, and no model folder can make
    ddro run its code. Every call that could unpickle or trust remote code is named here."""
    import re
    from pathlib import Path

    risky = re.compile(r"torch\.load\(|import pickle|pickle\.load|allow_pickle\s*=\s*True|trust_remote_code\s*=\s*True"
                       r"|np\.load\((?![^)]*allow_pickle=False)")
    source = Path(ddro.__file__).parent
    found = [f"{path.relative_to(source)}:{n}" for path in sorted(source.rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if risky.search(line)]
    assert found == []
    assert risky.search("np.load(path)") and risky.search("x = torch.load(f)")  # the pattern catches them
