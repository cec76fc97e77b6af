#!/usr/bin/env python3
"""Fail when a module of one of our crates imports, directly or through others, a module that
imports it back (an import circle).

A module is one source file (`src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`). Module A imports
module B when A names `crate::...` (or `super::...`) a path that resolves into B. A name that a
folder's `mod.rs` only re-exports (`pub use child::Name`) resolves to the child that defines it,
so a facade never hides a circle and never makes one. Inline `mod tests` blocks are read with
their file. Usage: scripts/check-import-circles.py [crate dirs...] (default: crates/*).
"""

import re
import sys
from pathlib import Path

PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_RE = re.compile(r"\buse\s+((?:crate|super|self)::[^;]*);", re.S)
REEXPORT_RE = re.compile(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]*);", re.S)
# Comments, raw strings, strings and char literals, left to right (a '"' must not open a string).
LEXEME_RE = re.compile(
    r"//[^\n]*|/\*.*?\*/|r(#*)\"(?:.|\n)*?\"\1|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\\n])'",
    re.S,
)
DEF_RE = re.compile(
    r"\bpub(?:\([a-z]+\))?\s+(?:async\s+)?(?:unsafe\s+)?"
    r"(?:fn|struct|enum|trait|type|const|static|mod|use\s+[^;]*?\bas)\s+([A-Za-z_][A-Za-z0-9_]*)"
)


def module_of(src: Path, f: Path):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def expand_use(tree: str):
    """`crate::a::{b, c::{d, e}}` -> ['crate::a::b', 'crate::a::c::d', ...]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, t):
        i = t.find("{")
        if i < 0:
            out.append(prefix + t)
            return
        head, body = t[:i], t[i + 1 : t.rfind("}")]
        depth, start = 0, 0
        for j, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = body[start:j]
                if part:
                    walk(prefix + head, part)
                start = j + 1

    walk("", tree)
    return [re.sub(r"\bas\b.*$", "", p) for p in out]


def clean(text: str) -> str:
    return LEXEME_RE.sub(lambda m: '""' if m.group(0)[:1] in "\"r'" else "", text)


def check_crate(crate: Path):
    src = crate / "src"
    if not src.is_dir():
        return []
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    texts = {m: clean(f.read_text()) for m, f in files.items()}
    defs = {m: set(DEF_RE.findall(t)) for m, t in texts.items()}

    def absolute(mod, path):
        segs = path.split("::")
        base = list(mod)
        if segs[0] == "crate":
            base, segs = [], segs[1:]
        else:
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
        return base + [s for s in segs if s != "self"]

    # Re-exports of folder modules: name -> the child module it comes from.
    reexports = {}
    for m, t in texts.items():
        table = {}
        for tree in REEXPORT_RE.findall(t):
            for p in expand_use(tree):
                segs = absolute(m, p) if p.split("::")[0] in ("crate", "super", "self") else list(m) + p.split("::")
                target = resolve(files, tuple(segs[:-1]))
                if target is None or target == m:
                    continue
                name = segs[-1]
                if name == "*":
                    for n in defs.get(target, ()):
                        table.setdefault(n, target)
                else:
                    table[name] = target
        reexports[m] = table

    def target_of(mod, segs):
        target = resolve(files, tuple(segs))
        if target is None:
            return None
        rest = segs[len(target):]
        seen = set()
        while rest and rest[0] in reexports.get(target, {}) and target not in seen:
            seen.add(target)
            nxt = reexports[target][rest[0]]
            if nxt == target:
                break
            target = nxt
        return target

    edges = {m: set() for m in files}
    for m, t in texts.items():
        spans = inline_modules(t)
        paths = []
        for u in USE_RE.finditer(t):
            paths += [(u.start(), p) for p in expand_use(u.group(1))]
        paths += [(x.start(), x.group(1) + x.group(2)) for x in PATH_RE.finditer(t)]
        for at, p in paths:
            # Inside `mod tests { ... }`, `super` is the file's own module.
            depth = sum(1 for a, b in spans if a <= at < b)
            target = target_of(m, absolute(m + ("{inline}",) * depth, p))
            if target is not None and target != m:
                edges[m].add(target)
    # A folder's mod.rs declaring its children is not an import.
    for m in edges:
        edges[m] = {t for t in edges[m] if not (len(t) == len(m) + 1 and t[: len(m)] == m and not uses_child(texts[m], t[-1]))}
    return [(crate, c, edges) for c in circles(edges)]


def inline_modules(text):
    """Spans of `mod name { ... }` blocks."""
    spans = []
    for x in re.finditer(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{", text):
        depth, i = 0, x.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        spans.append((x.start(), i))
    return spans


def uses_child(text, child):
    """Whether a module names its child other than in `mod child;` / `pub use child::...`."""
    body = re.sub(r"\b(pub(\([a-z]+\))?\s+)?mod\s+" + child + r"\s*;", "", text)
    body = REEXPORT_RE.sub("", body)
    return re.search(r"\b" + child + r"::", body) is not None


def resolve(files, segs):
    for n in range(len(segs), -1, -1):
        if tuple(segs[:n]) in files:
            return tuple(segs[:n])
    return None


def circles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "crate"


SELF_TEST = {
    # name: (files, expected circle or None)
    "direct": ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B; pub struct A;",
                "b.rs": "pub struct B(crate::a::A);"}, [("a",), ("b",)]),
    "facade, no circle": ({"lib.rs": "mod f;", "f/mod.rs": "mod x; mod y; pub use x::X;",
                           "f/x.rs": "pub struct X;", "f/y.rs": "use crate::f::X; struct Y(X);"}, None),
    "circle behind a facade": ({"lib.rs": "mod f;", "f/mod.rs": "mod x; mod y; pub use x::X;",
                                "f/x.rs": "use crate::f::y::Y; pub struct X(Y);",
                                "f/y.rs": "use crate::f::X; pub struct Y(Box<X>);"}, [("f", "x"), ("f", "y")]),
    "tests and strings do not count": ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B; pub struct A;\n"
                                        "#[cfg(test)] mod tests { use super::*; const S: &str = \"crate::b\"; }",
                                        "b.rs": "pub struct B; // crate::a::A\nconst C: char = '\"'; const T: &str = \"crate::a::A\";"}, None),
}


def self_test():
    import tempfile
    failures = 0
    for name, (files, expected) in SELF_TEST.items():
        with tempfile.TemporaryDirectory() as d:
            crate = Path(d) / "c"
            for rel, text in files.items():
                f = crate / "src" / rel
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text)
            found = [comp for _, comp, _ in check_crate(crate)]
            want = [expected] if expected else []
            if found != want:
                print(f"self-test '{name}': found {found}, expected {want}")
                failures += 1
    return failures


def main():
    root = Path(__file__).resolve().parent.parent
    if self_test():
        print("the import-circle check itself is wrong (self-test failed)")
        return 2
    crates = [Path(a) for a in sys.argv[1:]] or sorted((root / "crates").iterdir())
    found = []
    for c in crates:
        found += check_crate(c)
    for crate, comp, edges in found:
        print(f"import circle in {crate.name}: {', '.join(name(m) for m in comp)}")
        members = set(comp)
        for m in comp:
            back = sorted(name(t) for t in edges[m] if t in members)
            print(f"  {name(m)} -> {', '.join(back)}")
    if found:
        print(f"{len(found)} import circle(s): a module must not import a module that imports it back")
        return 1
    print(f"no import circles in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
