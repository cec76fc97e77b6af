#!/usr/bin/env python3
"""List source files over 600 lines and functions over 80 lines in our crates (the size rule
of docs/CODE.md); a reason may stand next to one: a `// long:` comment in the lines above it."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
FN = re.compile(r"^(\s*)(pub(\([a-z]+\))?\s+)?(async\s+)?(unsafe\s+)?(const\s+)?fn\s+([a-zA-Z0-9_]+)")
found = []
for f in sorted(root.glob("crates/*/src/**/*.rs")):
    lines = f.read_text().split("\n")
    rel = f.relative_to(root)
    reason = any("// long:" in l for l in lines[:40])
    if len(lines) > 600 and not reason:
        found.append(f"{rel}: {len(lines)} lines")
    for i, l in enumerate(lines):
        m = FN.match(l)
        if not m or l.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                break
        else:
            continue
        n = j - i + 1
        if n > 80 and not any("// long:" in x for x in lines[max(0, i - 6):i]):
            found.append(f"{rel}:{i + 1}: fn {m.group(7)} {n} lines")
print("\n".join(found))
sys.exit(1 if "--check" in sys.argv and found else 0)
