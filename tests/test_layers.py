"""The layer order of ocr/, written once: no module imports from a layer above its own.

A layer is a package of ocr/ (or one of the two top-level modules, the record and the door). Every
import counts, also those inside functions (loaded lazily, but still a dependency).
"""

import ast
from pathlib import Path

OCR = Path(__file__).resolve().parent.parent / "ocr"

# Lowest first: each may import from itself and anything before it, never after.
LAYERS = ["templates", "reader", "learn", "record", "pipeline", "draw", "synth", "eval", "db", "run", "review", "web"]


def layer_of(module: str) -> str | None:
    """`ocr.reader.align` -> `reader`; the package root `ocr` itself belongs to no layer (anyone may use it)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ocr" and len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `import ocr...` and `from ocr... import` in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                                                    if node.module == "ocr"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m == "ocr" or m.startswith("ocr.")]


def violations() -> list[str]:
    out = []
    for path in sorted(OCR.rglob("*.py")):
        parts = path.relative_to(OCR.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = layer_of(module)
        if own is None:
            continue
        assert own in LAYERS, f"{path}: layer {own!r} is not in LAYERS: add it where it belongs in the order"
        for line, target in imports(path):
            other = layer_of(target)
            if other is not None and other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                out.append(f"{path.relative_to(OCR.parent)}:{line}: {own} imports {target} ({other} is above {own})")
    return out


def test_no_module_imports_from_a_layer_above_its_own():
    assert violations() == []


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The check itself: a lazy import from above is found."""
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from ocr.web.app import create_app\n    import ocr.review.workflow\n")
    assert [m for _, m in imports(sample)] == ["ocr.web.app", "ocr.review.workflow"]
