"""Every code name DESIGN.md puts in backticks names something in the tree: a path that exists, or
an identifier (a C++ type or function, a snake_case name, a test name) that some source, script,
test or build file spells. Prose, flags, commands and formulas in backticks are not checked.

Usage: design_names_test.py REPO_ROOT
"""
import os
import re
import sys

SOURCE_EXTENSIONS = (".h", ".cc", ".cu", ".cuh", ".py", ".sh", ".txt", ".cmake", ".yml", ".yaml", ".json", ".slurm",
                     ".example", "Dockerfile")
SKIPPED_DIRS = {".git", "docs"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tree_words(root):
    """The identifier-like words of every source file, and every relative path."""
    words, paths = set(), set()
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        dirs[:] = [x for x in dirs if x not in SKIPPED_DIRS and not x.startswith("build") and
                   not (rel == "." and x.startswith("."))]
        for f in files:
            path = os.path.normpath(os.path.join(rel, f))
            paths.add(path)
            for parent in range(path.count("/")):
                paths.add(path.rsplit("/", parent + 1)[0])
            if f.endswith(SOURCE_EXTENSIONS) or f == "CMakeLists.txt":
                with open(os.path.join(d, f), encoding="utf-8", errors="replace") as fh:
                    words.update(IDENT.findall(fh.read()))
    return words, paths


def is_code_name(word):
    """snake_case with an underscore, CamelCase, or a capitalized C++ name: not plain prose."""
    if "_" in word.strip("_"):
        return True
    return bool(re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+", word))  # two or more humps


def checked_names(span):
    """The (kind, name) pairs a backticked span asks to exist."""
    if " " in span or span.startswith("-") or "*" in span or "{" in span or "|" in span:
        return []
    if "/" in span and not span.startswith("/") and re.fullmatch(r"[\w./-]+", span) and "." in span.split("/")[-1]:
        return [("path", span.rstrip("/"))]
    if re.fullmatch(r"[\w./-]+/", span):
        return [("path", span.rstrip("/"))]
    return [("name", w) for w in IDENT.findall(span) if is_code_name(w)]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    design = open(os.path.join(root, "DESIGN.md"), encoding="utf-8").read()
    words, paths = tree_words(root)
    spans = re.findall(r"`([^`\n]+)`", design)
    checked, missing = 0, []
    for span in spans:
        for kind, name in checked_names(span):
            checked += 1
            found = name in paths if kind == "path" else name in words
            if not found:
                missing.append(f"`{span}`: {kind} {name!r} is nowhere in the tree")
    print(f"DESIGN.md: {len(spans)} backticked spans, {checked} code names checked, {len(missing)} missing")
    for m in sorted(set(missing)):
        print("  " + m)
    ok = not missing and checked > 100
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
