#!/usr/bin/env python3
"""Port of tests/architecture.rs's platform-name and file-cycle checks, plus the largest types.

Usage: layering.py ROOT   (a checkout or a `git archive` of the commit to measure)

Prints: per platform, the files outside its own modules that name it (identifier words and
literal words, outside tests); per crate, the groups of files in an import cycle; the structs with
the most fields and the types with the most public methods."""
import os, re, sys, collections
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fnlen import lex, test_ranges, matching, is_ident  # noqa: E402

NAMES = {"meta": ["facebook", "fb", "instagram", "graph"], "tiktok": [], "google": ["gads"],
         "pinterest": [], "twitter": [], "linkedin": []}
TABLES = {("growth-engine", "platforms/builtin/mod.rs"), ("sandbox", "platforms/mod.rs")}


def name_of(word):
    for slug, aliases in NAMES.items():
        if word == slug or word in aliases:
            return slug


def words(ident):
    out = []
    for part in ident.split("_"):
        out += [w.lower() for w in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z]+", part)]
    return out


def sources(src, main):
    data = {}
    for dp, _, fs in os.walk(src):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.relpath(os.path.join(dp, f), src)
                text = open(os.path.join(dp, f), encoding="utf-8").read()
                code, strings = lex(text)
                data[p] = [code, strings, test_ranges(code)]
    testfiles = set()
    for p, (code, _, tr) in data.items():
        stem = p[:-3]
        d = stem[:-4] if stem.endswith("/mod") else stem
        if p in ("lib.rs", "main.rs"):
            d = ""
        for s, e in tr:
            m = re.search(r"mod (\w+)", code[s:e])
            if m and e < len(code) and code[e] == ";":
                module = f"{d}/{m.group(1)}".lstrip("/")
                testfiles.add(module + ".rs")
                testfiles.update(q for q in data if q.startswith(module + "/"))
    for t in testfiles:
        if t in data:
            data[t][2] = [(0, len(data[t][0]))]
    if main:
        data.pop("lib.rs", None)
        data.pop("main.rs", None)
    return data


def intest(tr, o):
    return any(s <= o <= e for s, e in tr)


def own_platform(path):
    parts = path[:-3].split("/")
    return next((s for s in NAMES if s in parts), None)


def named(crate, p, code, strings, tr):
    found = []
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", code):
        a, ident = m.start(), m.group(0)
        if (a > 0 and is_ident(code[a - 1])) or intest(tr, a):
            continue
        if a > 0 and code[a - 1] == ":" and ident == "meta":
            continue
        if len(ident) > 2 and ident[0] == "X" and ident[1].isupper() and ident[2].islower():
            found.append(("twitter", ident))
        for w in words(ident):
            if name_of(w):
                found.append((name_of(w), ident))
    for o, s in strings:
        if intest(tr, o):
            continue
        for w in re.split(r"[^a-z0-9]", s.lower().replace("<meta ", "< ")):
            if name_of(w):
                found.append((name_of(w), s))
    table = (crate, p) in TABLES
    return [(slug, w) for slug, w in found if own_platform(p) != slug and not (table and w == slug)]


def module_path(p):
    stem = p[:-3]
    stem = stem[:-4] if stem.endswith("/mod") else stem
    return tuple(stem.split("/"))


def paths_in(code, tr, here, children):
    out = []
    for m in re.finditer(r"\b(crate|self|super|[a-z_][a-z0-9_]*)::", code):
        a = m.start()
        if (a > 0 and (code[a - 1] in ":$" or is_ident(code[a - 1]))) or intest(tr, a):
            continue
        first = m.group(1)
        if first == "crate":
            base = ()
        elif first == "self":
            base = here
        elif first == "super":
            base = here[:-1]
        elif first in children:
            base = here + (first,)
        else:
            continue
        out += tail(code, m.end(), list(base))
    return out


def tail(code, at, prefix):
    while True:
        if at < len(code) and code[at] == "{":
            end = matching(code, at)
            group, depth, items, cur = code[at + 1:end], 0, [], ""
            for c in group:
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == "," and depth == 0:
                    items.append(cur)
                    cur = ""
                    continue
                cur += c
            items.append(cur)
            res = []
            for it in items:
                it = it.strip()
                m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", it)
                if not m:
                    continue
                if m.group(0) == "self":
                    res.append(tuple(prefix))
                    continue
                path = prefix[:-1] if m.group(0) == "super" else prefix + [m.group(0)]
                if it[m.end():].startswith("::"):
                    res += tail(it, m.end() + 2, path)
                else:
                    res.append(tuple(path))
            return res
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", code[at:])
        if not m:
            return [tuple(prefix)]
        at += m.end()
        prefix = prefix[:-1] if m.group(0) == "super" else prefix + [m.group(0)]
        if not code[at:].startswith("::"):
            return [tuple(prefix)]
        at += 2


def cycles(data):
    files = {module_path(p): p for p in data}
    graph = collections.defaultdict(set)
    for p, (code, _, tr) in data.items():
        children = {m.group(1) for m in re.finditer(r"\bmod (\w+)", code) if not intest(tr, m.start())}
        for path in paths_in(code, tr, module_path(p), children):
            for n in range(len(path), -1, -1):
                t = files.get(tuple(path[:n]))
                if t:
                    if t != p:
                        graph[p].add(t)
                    break
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            g = []
            while True:
                w = stack.pop()
                on.discard(w)
                g.append(w)
                if w == v:
                    break
            if len(g) > 1:
                groups.append(sorted(g))
    sys.setrecursionlimit(10000)
    for v in sorted(data):
        if v not in index:
            visit(v)
    return groups


def types(data):
    fields, methods = {}, collections.Counter()
    for p, (code, _, tr) in data.items():
        for m in re.finditer(r"\bstruct (\w+)[^;{(]*\{", code):
            if intest(tr, m.start()):
                continue
            body = code[m.end():matching(code, m.end() - 1)]
            fields[f"{m.group(1)} ({p})"] = len(re.findall(r"^\s*(pub(\([^)]*\))? )?\w+:", body, re.M))
        for m in re.finditer(r"\bimpl(<[^>]*>)? (\w+)\s*\{", code):
            if intest(tr, m.start()):
                continue
            body = code[m.end():matching(code, m.end() - 1)]
            methods[m.group(2)] += len(re.findall(r"\bpub (async )?fn ", body))
    return fields, methods


def main():
    root = sys.argv[1]
    crates = [("growth-engine", os.path.join(root, "src"), True)]
    cdir = os.path.join(root, "crates")
    for c in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        crates.append((c, os.path.join(cdir, c, "src"), False))
    by_platform = collections.defaultdict(set)
    hits = collections.Counter()
    for name, src, main_crate in crates:
        data = sources(src, main_crate)
        for p, (code, strings, tr) in data.items():
            for slug, _ in named(name, p, code, strings, tr):
                by_platform[slug].add(f"{name}:{p}")
                hits[slug] += 1
        groups = cycles(data)
        print(f"{name}: {len(groups)} import cycles between files, {sum(map(len, groups))} files in them")
        for g in groups:
            print(f"  {len(g)}: {' '.join(g)}")
        if main_crate:
            fields, methods = types(data)
            top = sorted(fields.items(), key=lambda kv: -kv[1])[:3]
            print("  most fields: " + ", ".join(f"{k} {v}" for k, v in top))
            print("  most pub methods: " + ", ".join(f"{k} {v}" for k, v in methods.most_common(3)))
    for slug in NAMES:
        files = sorted(by_platform[slug])
        print(f"{slug}: named in {len(files)} files outside its own modules ({hits[slug]} places)")
        if "-v" in sys.argv:
            for f in files:
                print(f"  {f}")


if __name__ == "__main__":
    main()
