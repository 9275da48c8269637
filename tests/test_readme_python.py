"""The README's "Use from Python" example runs as written (on the tiny bundle, not the default
model, whose labels it would print instead), and its example policy file is a valid policy."""

import re
import subprocess
import sys

from support.paths import REPO_ROOT

SECTION = "## Use from Python"


def readme_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme, f"README.md has no {SECTION!r} section"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"README.md's {SECTION!r} section has no python block"
    return blocks[0]


def test_the_readme_python_example_runs(tiny_bundle, tmp_path):
    code = readme_example()
    assert '"models/default"' in code
    completed = subprocess.run(
        [sys.executable, "-c", code.replace('"models/default"', repr(str(tiny_bundle)))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    # one line per text, the routed conversation turn, the urgency probabilities
    assert len(lines) == 5, completed.stdout
    assert all(line.split()[5] in {"bot", "clarify", "human"} for line in lines[:3])
    assert "'queue'" in lines[3] and "'low'" in lines[4]


def test_the_readme_policy_example_is_a_valid_policy_file(tiny_bundle, tmp_path):
    from kefu.serving.bundle.reader import read_bundle
    from kefu.serving.routing_policy import RoutingPolicy

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**The policy file.**", 1)[1]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert blocks, "README.md's policy file paragraph has no yaml block"
    path = tmp_path / "my_policy.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    policy = RoutingPolicy.for_bundle(read_bundle(tiny_bundle), path)
    assert (policy.max_turns, policy.max_candidates) == (5, 2)
    assert policy.group_queues["general"] == "在线客服"
