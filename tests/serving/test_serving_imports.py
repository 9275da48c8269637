"""The serving runtime never imports torch or transformers, not even indirectly (with or
without the ray extra; tests/cli/test_installed_package.py checks a venv without it)."""

import json
import subprocess
import sys

from support.paths import REPO_ROOT

PROBE = """
import importlib, json, pkgutil, sys
import kefu.serving
import kefu.serving.server.app
import kefu.cli.serve
from kefu.errors import ConfigError
for module in pkgutil.walk_packages(kefu.serving.__path__, "kefu.serving."):
    try:
        importlib.import_module(module.name)
    except ConfigError as exc:  # an optional extra (ray) that is not installed: named, not fatal
        assert "extra" in str(exc), exc
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"torch", "transformers"})
print(json.dumps({"modules": len([m for m in sys.modules if m.startswith("kefu.serving")]), "heavy": heavy}))
"""


def test_importing_the_server_does_not_import_torch_or_transformers():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["modules"] > 10
