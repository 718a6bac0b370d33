"""A user's own kernels: plugin modules loaded before the cases are planned.

    python -m bench run --plugin my_kernels.py        # a file
    python -m bench run --plugin my_package.kernels   # an importable module
    [project.entry-points."actbench.plugins"]         # an installed one: loaded by every run and list
    my_kernels = "my_package.kernels"

A plugin declares a backend and registers kernels for existing ops through the public API of
`kernels` (`Backend`, `Available`, `declare_backend`, `register`: docs/plugins.md, examples/my_relu.py).
Once loaded its backend is one more backend: the cases are planned over it, checked by the same
gate, timed with the same clocks, read against the same peaks, and shown and saved like any other.
`load` returns what was loaded (the env record of the run: where from, and the sha256 of the file).

A plugin that cannot be loaded is a UsageError of one line (exit 2): the file or module missing,
an exception while importing it (with the plugin's own line it came from), a backend name that
exists already, a kernel for an unknown op or in place of one that exists.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Callable

from kernels import registry

from bench.model.cases import UsageError

GROUP = "actbench.plugins"      # the entry-point group of installed plugins


def load(specs: list[str] | tuple[str, ...] = (), entry_points: bool = True) -> list[dict]:
    """Import the installed plugins (entry points of `GROUP`, when `entry_points`) and then each of
    `specs` (a .py file's path, or an importable module's name), each once; their records."""
    records: list[dict] = []
    loaded: set[str] = set()
    if entry_points:
        for ep in metadata.entry_points(group=GROUP):
            what = f"entry point {ep.name} = {ep.value}"
            records += _once(what, loaded, lambda ep=ep: ep.load(), module=ep.module, source="entry point")
    for spec in specs:
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise UsageError(f"--plugin {spec}: no such file")
            records += _once(spec, loaded, lambda path=path: _import_file(path), module=None, source="file",
                             path=path.resolve())
        else:
            if importlib.util.find_spec(spec.split(".")[0]) is None:
                raise UsageError(f"--plugin {spec}: no such file or importable module")
            records += _once(spec, loaded, lambda spec=spec: importlib.import_module(spec), module=spec,
                             source="module")
    return records


def _once(what: str, loaded: set[str], do: Callable, *, module: str | None, source: str,
          path: Path | None = None) -> list[dict]:
    """Run `do` (the import) unless the same file or module was loaded already; check what it
    declared; its record in a list (empty when it was loaded before)."""
    key = str(path) if path is not None else f"module:{module}"
    if key in loaded:
        return []
    backends = {b.name: b for b in registry.all_backends()}
    kernels_before = {(k.op, k.backend): k for k in registry.kernels()}
    try:
        mod = do()
    except UsageError:
        raise
    except (Exception, SystemExit) as exc:
        raise UsageError(f"plugin {what}: {_one_line(exc)}{_where(exc, path, module)}") from None
    file = Path(mod.__file__).resolve() if getattr(mod, "__file__", None) else path
    loaded.update({key, str(file)})
    for name, be in backends.items():
        if registry.backend(name) is not be:
            raise UsageError(f"plugin {what}: declares backend {name!r}, which exists already; give it another name")
    for (op, b), k in kernels_before.items():
        if registry.kernel(op, b) is not k:
            raise UsageError(f"plugin {what}: registers {op!r} on {b!r}, which has that kernel already")
    new_backends = [b.name for b in registry.all_backends() if b.name not in backends]
    new_kernels = [f"{k.op}@{k.backend}" for k in registry.kernels() if (k.op, k.backend) not in kernels_before]
    if not new_backends and not new_kernels:
        raise UsageError(f"plugin {what}: declares no backend and registers no kernel "
                         "(kernels.declare_backend, kernels.register: docs/plugins.md)")
    return [{"plugin": what, "source": source, "module": mod.__name__, "path": str(file) if file else None,
             "sha256": _sha256(file), "backends": new_backends, "kernels": new_kernels}]


def _import_file(path: Path):
    """The module of a .py file, imported under a name of its own (in sys.modules while it runs, so
    that dataclasses and pickling find it)."""
    name = f"actbench_plugin_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--plugin {path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) if not isinstance(exc, SyntaxError) else (exc.msg or "invalid syntax")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(exc: BaseException, path: Path | None, module: str | None) -> str:
    """' (at FILE:LINE: source)' for the plugin's own line the exception came from: the deepest
    frame in the plugin's file (or, for a module, its package), else the deepest frame of all."""
    if isinstance(exc, SyntaxError) and exc.filename:
        code = (exc.text or "").strip()
        return f" (at {exc.filename}:{exc.lineno}{': ' + code if code else ''})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    mine = [f for f in frames if _is_plugins(f.filename, path, module)]
    if not (mine or frames):
        return ""           # the import machinery's own: a module that is not there
    f = (mine or frames)[-1]
    return f" (at {f.filename}:{f.lineno}{': ' + f.line.strip() if f.line else ''})"


def _is_plugins(filename: str, path: Path | None, module: str | None) -> bool:
    if path is not None:
        return Path(filename).resolve() == path.resolve()
    if module:
        top = importlib.util.find_spec(module.split(".")[0])
        where = (top.submodule_search_locations or [top.origin]) if top else []
        return any(str(Path(filename).resolve()).startswith(str(Path(w).resolve())) for w in where if w)
    return False


def _sha256(file: Path | None) -> str | None:
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest() if file else None
    except OSError:
        return None
