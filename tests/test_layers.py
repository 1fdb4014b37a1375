"""The package's layers: every import inside rumination points down (or sideways within one
folder), so each folder can be read knowing only the folders below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rumination"

# lowest first; a module may import its own layer and the ones before it
LAYERS: list[set[str]] = [
    {"models", "errors", "defaults", "wording", "events", "templates", "settings", "progress",
     "prompts", "reports", "urls", "cjk", "citation_marks",
     "settings_reference"},  # the shared vocabulary, and rendering reports and docs from it
    {"telemetry"},  # traces built from events: below everything that emits them
    {"store"},
    {"llm"},
    {"reading"},
    {"support"},
    {"agent"},
    {"search_backends"},  # plugins: they use the agent's backend registry
    {"testing"},  # the protocol simulator searches a corpus like the local backend
    {"jobs"},
    {"service"},
    {"cli"},
]
FACADE = {"__init__", "__main__"}  # the public names, imported lazily from every layer


def layer_of(part: str) -> int:
    for number, members in enumerate(LAYERS):
        if part in members:
            return number
    raise AssertionError(f"rumination.{part} is in no layer: add it to LAYERS")


def imported_parts(path: Path) -> set[str]:
    """The first component under rumination of every module `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "rumination" and len(pieces) > 1:
                parts.add(pieces[1])
            elif pieces == ["rumination"] and isinstance(node, ast.ImportFrom):
                parts.update(alias.name for alias in node.names)
    return parts


def test_imports_only_point_down() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if part in FACADE:
            continue
        own = layer_of(part)
        for target in imported_parts(path) - FACADE - {"__version__"}:
            if layer_of(target) > own:
                upward.append(f"{path.relative_to(PACKAGE)} imports rumination.{target}")
    assert not upward, "\n".join(upward)


def test_relative_imports_are_not_used() -> None:
    """Absolute imports say where a name lives; the layer check reads them."""
    relative = [
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if any(isinstance(n, ast.ImportFrom) and n.level
               for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
    ]
    assert not relative, relative


def test_at_most_twenty_loose_modules_and_none_over_600_lines() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 20, loose
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, long


def module_name(path: Path) -> str:
    parts = ["rumination", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The rumination modules `path` imports (lazily inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in candidates if name in known)
    return found


def test_no_module_imports_itself_through_others() -> None:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    graph["rumination"] = set()  # the facade imports lazily from every layer, by design
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "\n".join(circles)
