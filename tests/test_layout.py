"""The project's layering, read from the import statements (those inside functions too), so that it cannot drift:

- `modeling_dems` (the model, its remote code and the converter) imports nothing from the rest of the project;
- `dems_training` keeps few modules at its top, the rest in sub-packages;
- no two parts of `dems_training` (a sub-package or a top module) import each other, in either direction, through
  any chain of modules: the parts and their imports form no cycle.
"""

import ast
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
MAX_TOP_MODULES = 10


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """The project modules `path` imports: `from package import module` counts as the module, `from module import
    name` as the module."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if is_module(candidate) else source)
    return found


def modules_of(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((REPO / package).rglob("*.py"))}


def part_of(module: str) -> str | None:
    """`dems_training.data.loading` -> `dems_training.data`; a top module is its own part; None outside."""
    parts = module.split(".")
    if parts[0] != "dems_training":
        return None
    return ".".join(parts[:2])


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in modules_of("dems_training").items():
        source = part_of(module)
        graph.setdefault(source, set())
        for target in map(part_of, imported_modules(path)):
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["modeling_dems", "configuration_dems"])
def test_the_model_packages_import_nothing_of_the_training_code(package):
    offenders = {
        f"{module} imports {target}"
        for module, path in modules_of(package).items()
        for target in imported_modules(path)
        if target.split(".")[0] == "dems_training"
    }
    assert not offenders


def test_few_modules_at_the_top_of_dems_training():
    top = sorted(path.name for path in (REPO / "dems_training").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_no_two_parts_of_dems_training_import_each_other():
    graph = part_graph()
    assert {"dems_training.data", "dems_training.augmentation", "dems_training.hub"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle_through_a_third_part():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_modules():
    imports = imported_modules(REPO / "dems_training" / "data" / "loading.py")
    assert {"dems_training", "dems_training.launch", "dems_training.data.table"} <= imports
