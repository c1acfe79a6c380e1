"""cg_diff.py A B N [TOP]: the per-request instruction profile of the
requests run B served beyond run A: (Ir_B - Ir_A) / N per function, from
`callgrind_annotate` of the two callgrind dumps, self cost (and inclusive
with INCLUSIVE=1 in the environment). Used by bench/python-profile.sh."""

import os
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\*\s+)?(.+)$")


def costs(path, inclusive):
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", f"--inclusive={'yes' if inclusive else 'no'}", path],
        check=True, capture_output=True, text=True,
    ).stdout
    out = {}
    started = False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started or line.startswith("-"):
            continue
        if not line.strip():
            if out:
                break  # the function list ends; source annotation follows
            continue
        match = LINE.match(line)
        if match:
            name = short(match.group(2).strip())
            out[name] = out.get(name, 0) + int(match.group(1).replace(",", ""))
    return out


def short(name):
    """A function name without build paths and the object file."""
    name = re.sub(r"\s*\[[^\]]*\]$", "", name)
    name = re.sub(r"^.*/Python-[\d.]+/", "cpython:", name)
    name = re.sub(r"^/rustc/[0-9a-f]+/library/", "std:", name)
    name = re.sub(r"^.*/index\.crates\.io-[0-9a-f]+/", "", name)
    name = re.sub(r"^\./[^:]*/", "libc:", name)
    return name


def main():
    a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    inclusive = os.environ.get("INCLUSIVE") == "1"
    ca, cb = costs(a, inclusive), costs(b, inclusive)
    diff = {name: (cb.get(name, 0) - ca.get(name, 0)) / n for name in set(ca) | set(cb)}
    rows = sorted(diff.items(), key=lambda item: -item[1])[:top]
    for name, per in rows:
        print(f"{per:10.0f}  {name[:150]}")


if __name__ == "__main__":
    main()
