"""The core must not pull in terminal or cloud libraries: they are slow to import and not always installed.

The import-linter contracts in pyproject.toml ([tool.importlinter], run by scripts/lint.sh) check the
import statements; these tests check what importing actually loads, in a fresh interpreter, which also
catches an import hidden behind a registry or a re-export."""

import json
import subprocess
import sys

CORE = [
    "workbench",
    "workbench.flowspec",
    "workbench.decorators",
    "workbench.graph",
    "workbench.config",
    "workbench.settings",
    "workbench.events",
    "workbench.datastore",
    "workbench.runtime",
    "workbench.task",
    "workbench.client",
    "workbench.cli",
    "workbench.cli.run",
    "workbench.cli.inspect",
    "workbench.cli.project",
    "workbench.promote",
    "workbench.project",
    "workbench.backends",
    "workbench.backends.local",
    "workbench.cli.render",
    "workbench.usage",
]
HEAVY = ["textual", "docker", "boto3", "botocore", "kubernetes"]


def test_core_imports_no_heavy_library():
    code = (
        "import sys, json\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_backends_never_import_textual():
    """Every registered backend imports (a failing import fails this test) without pulling in textual."""
    code = (
        "import sys\n"
        "from workbench.backends import REGISTRY, backend_class\n"
        "for name in REGISTRY:\n"
        "    backend_class(name)\n"
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_backend_modules_import_their_cloud_libraries_lazily():
    """Batch and Kubernetes (and the pieces they are made of) import boto3/kubernetes only when used, so the
    registry can import them to ask e.g. whether a backend is remote."""
    modules = [
        "workbench.backends.remote",
        "workbench.backends.batch",
        "workbench.backends.kubernetes",
        "workbench.backends.k8s_client",
        "workbench.backends.k8s_logs",
        "workbench.backends.k8s_nodes",
        "workbench.backends.k8s_manifest",
        "workbench.backends.k8s_status",
    ]
    code = (
        "import sys, json\n"
        + "".join(f"import {m}\n" for m in modules)
        + "from workbench.backends import is_remote\n"
        + "assert is_remote('batch') and is_remote('kubernetes') and not is_remote('local')\n"
        + f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
