"""The serving runtime never imports torch or transformers, not even indirectly (with or
without the ray extra; tests/cli/test_installed_package.py checks a venv without it)."""

import importlib
import json
import subprocess
import sys

import pytest
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


PYTHON_API = """
import json, sys
import kefu.serving
light = sorted(name for name in ("numpy", "onnxruntime", "tokenizers", "fastapi") if name in sys.modules)
from kefu.serving import *  # noqa: F403
names = {name: getattr(kefu.serving, name).__module__ for name in kefu.serving.__all__}
print(json.dumps({"light": light, "names": names}))
"""


def test_the_python_api_is_named_by_kefu_serving_and_loaded_on_first_use():
    completed = subprocess.run(
        [sys.executable, "-c", PYTHON_API],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["light"] == []  # `import kefu.serving` alone loads no runtime library
    assert {"Classifier", "ConversationContext", "RoutingPolicy", "decide"} <= set(report["names"])
    import kefu.serving

    assert sorted(kefu.serving.__all__) == sorted(kefu.serving._MODULES)
    for name, module in report["names"].items():
        assert module.startswith("kefu.serving.")
        # import_module, not sys.modules: run alone, this process has loaded none of them yet
        assert getattr(importlib.import_module(module), name) is getattr(kefu.serving, name)
    with pytest.raises(AttributeError, match="has no attribute 'Classifer'"):
        kefu.serving.Classifer  # noqa: B018
