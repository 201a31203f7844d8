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
    "workbench.project_files",
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


def test_every_public_name_stays_itself_whatever_the_runtime_imported():
    """`from workbench import environment` is the @environment decorator even after the runtime loaded all of
    its modules (a submodule named like a public name would replace it on the package once imported)."""
    code = (
        "import importlib, pkgutil, json, workbench\n"
        "public = {n: getattr(workbench, n) for n in workbench.__all__ if hasattr(workbench, n)}\n"
        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
        "    if not m.name.startswith(('workbench.tui', 'workbench.backends')) and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(n for n, v in public.items() if getattr(workbench, n) is not v)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
