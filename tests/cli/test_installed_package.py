"""`pip install .` (not editable, runtime only) serves a bundle with nothing from the checkout.

A fresh virtual environment gets the package from a wheel built from this checkout; the server
then runs from a directory outside it, with a bundle copied there, so any runtime read of the
repository root (taxonomy, configs, `../shared`) would fail here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

import pytest
from support.paths import REPO_ROOT
from support.serving import free_port


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with only `pip install <wheel>` in it: the runtime dependencies, no extras."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels)]
        + ["--no-build-isolation", str(REPO_ROOT)],
        check=True,
        cwd=root,
        timeout=300,
    )
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    (wheel,) = wheels.glob("kefu-*.whl")
    # without PYTHONPATH: a checkout on it (and the kefu.egg-info `pip wheel` leaves there)
    # would make pip think kefu is already installed
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        cwd=root,
        timeout=900,
        # with the checkout on PYTHONPATH, pip would see the build's kefu.egg-info there, call
        # kefu "already satisfied" and install only its dependencies
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    return env_dir


def test_every_runtime_module_imports_without_torch_transformers_or_ray(installed):
    """The fresh venv has the runtime dependencies only: no torch, transformers or ray."""
    probe = (
        "import importlib, importlib.util, json, pkgutil, kefu.serving, kefu.serving.taxonomy as t\n"
        "from kefu.errors import ConfigError\n"
        "names = [m.name for m in pkgutil.walk_packages(kefu.serving.__path__, 'kefu.serving.')]\n"
        "refused = {}\n"
        "for name in names:\n"
        "    try: importlib.import_module(name)\n"
        "    except ConfigError as exc: refused[name] = str(exc)\n"
        "print(json.dumps({'file': t.__file__, 'intents': len(t.load_taxonomy().intents), "
        "'modules': len(names), 'refused': refused, 'absent': [m for m in "
        "('torch', 'transformers', 'ray') if importlib.util.find_spec(m) is None]}))"
    )
    completed = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe],
        cwd=installed.parent,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout)
    assert report["file"].startswith(str(installed))  # not the checkout
    assert report["intents"] == 21
    assert report["modules"] > 30
    # the modules that need an extra say which, instead of an ImportError
    needs_ray = (
        "--engine ray needs the ray extra: "
        "pip install 'ray[data]>=2.30,<3' (from a checkout: pip install -e '.[ray]')"
    )
    assert report["refused"] == {
        f"kefu.serving.batch.{name}": needs_ray
        for name in ("ray_chunks", "ray_engine", "ray_routing")
    }
    assert report["absent"] == ["torch", "transformers", "ray"]


def test_the_installed_kefu_serves_a_bundle_from_outside_the_checkout(installed, tiny_bundle):
    workdir = installed.parent / "elsewhere"
    bundle = shutil.copytree(tiny_bundle, workdir / "bundle")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    env.pop("PYTHONPATH", None)
    server = subprocess.Popen(
        [str(installed / "bin" / "kefu"), "serve", "--bundle", str(bundle), "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/classify",
            data=json.dumps({"text": "我的快递三天没动了"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        (result,) = body["results"]
        assert body["model_version"] == "tiny-0"
        assert result["intent"]["label"]
        assert result["route"]["queue"]
    finally:
        server.terminate()
        server.wait(timeout=30)
