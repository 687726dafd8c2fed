"""Dependencies a packager can trust (issue 20): nothing declared that is never used, DSPy's internals
behind one checked module, locks that work on every platform and leave nothing behind."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import dspy

from autoevol_dspy.data.io import RowStore
from autoevol_dspy.errors import RunConflictError
from autoevol_dspy.lm.dspy_internals import StdlibTransport, declared_providers
from autoevol_dspy.runlock import LOCK_NAME, RunDirLock

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "autoevol_dspy"


def _imports() -> dict[Path, set[str]]:
    """Every module each source file of the package imports (absolute names)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        found[path] = names
    return found


def test_every_declared_dependency_is_imported_by_the_package():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    imported = {name.split(".")[0] for names in _imports().values() for name in names}
    import_names = {"dspy-ai": "dspy", "pyyaml": "yaml"}
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=;\[ ]", requirement, maxsplit=1)[0]
        assert import_names.get(name, name) in imported, f"{name} is declared but never imported"


def test_only_one_module_reaches_into_dspy_internals():
    private = {path.relative_to(PACKAGE).as_posix() for path, names in _imports().items()
               if any("._" in name or name.startswith("dspy._") for name in names if name.startswith("dspy"))}
    assert private == {"lm/dspy_internals.py"}


def test_the_dspy_internals_still_have_the_shape_the_server_engine_uses():
    parameters = inspect.signature(StdlibTransport).parameters
    config = dspy.lm15.RouterConfig(timeouts=None, max_connections=7)
    for name in [*config.transport_kwargs(), "connect_timeout", "read_timeout", "write_timeout", "pool_timeout",
                 "proxy", "trust_env"]:
        assert name in parameters, name
    transport = StdlibTransport(max_connections=7, trust_env=False)
    providers = declared_providers()
    routed = dspy.clients.engines.lm15_engine.LM15Engine(dspy.lm15.RouterConfig(
        env={}, providers=providers, transport=transport))
    assert routed.resolve("openai/any-model").provider.startswith("openai")


def test_no_lock_uses_posix_only_calls():
    assert not [path for path, names in _imports().items() if "fcntl" in names]


def test_a_run_refused_before_it_wrote_anything_leaves_no_directory(tmp_path):
    fresh = tmp_path / "fresh"
    with RunDirLock(fresh):
        assert (fresh / LOCK_NAME).exists()
    assert not fresh.exists()
    used = tmp_path / "used"
    with RunDirLock(used):
        (used / "study.db").write_text("", encoding="utf-8")
    assert (used / "study.db").exists()  # a directory with a run in it stays
    existing = tmp_path / "existing"
    existing.mkdir()
    with RunDirLock(existing):
        pass
    assert existing.is_dir()  # one the user made stays too


def test_a_refused_optimize_leaves_no_out_directory(tmp_path, capsys):
    from autoevol_dspy.cli.main import main

    seeds = REPO / "examples" / "seeds.jsonl"
    method = tmp_path / "method.txt"
    method.write_text("Rewrite the instruction into a harder one and give only the rewritten instruction.",
                      encoding="utf-8")
    out = tmp_path / "run"
    code = main(["optimize", str(seeds), "--out", str(out), "--lm", "openai/stub", "--api-base",
                 "http://127.0.0.1:9/v1", "--initial-method", str(method), "--dev-size", "5000", "--no-progress"])
    assert code == 2 and "dev" in capsys.readouterr().err
    assert not out.exists()


def test_an_evolution_output_is_held_by_one_writer_and_its_lock_file_goes_with_it(tmp_path):
    out = tmp_path / "rows.jsonl"
    store = RowStore(out).open(overwrite=False)
    try:
        refused = RowStore(out)
        try:
            refused.open(overwrite=False)
            raise AssertionError("a second writer was let in")
        except RunConflictError:
            pass
    finally:
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    RowStore(out).open(overwrite=False).close()  # free again
