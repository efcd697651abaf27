#!/usr/bin/env python3
"""Write a CycloneDX 1.5 SBOM (JSON) of the crates linked into conch.

Usage: dist/sbom.py TARGET_TRIPLE > conch.cdx.json

The crate set is the normal-dependency closure of the `conch` package as
Cargo resolves it for TARGET_TRIPLE (`cargo metadata --filter-platform`,
with the features actually enabled). Crates linked into the binary have
scope "required"; proc macros and what only they use (syn, quote, ...) run
in the compiler and have scope "excluded". Build-only crates (build
scripts' dependencies, the protobuf generator, test-only crates) are not
listed. Each crate's SHA-256 is the checksum Cargo.lock
pins for its crates.io archive. No network: `cargo metadata --offline
--locked`. The output is deterministic: its one timestamp is
SOURCE_DATE_EPOCH (the commit time when built by dist/make-dist.sh).
"""

import datetime
import json
import os
import subprocess
import sys
import tomllib

if len(sys.argv) != 2:
    sys.exit("usage: dist/sbom.py TARGET_TRIPLE")
target = sys.argv[1]
root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
         "--filter-platform", target],
        cwd=root_dir,
    )
)
with open(os.path.join(root_dir, "Cargo.lock"), "rb") as f:
    lock = tomllib.load(f)
checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]


def normal_deps(node_id):
    for d in nodes[node_id]["deps"]:
        if any(k["kind"] is None for k in d["dep_kinds"]):
            yield d["pkg"]


def is_proc_macro(i):
    return any("proc-macro" in t["kind"] for t in packages[i]["targets"])


def closure(through_macros):
    seen, todo = set(), [root]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        if through_macros or not is_proc_macro(i):
            todo.extend(normal_deps(i))
    return seen


# Proc macros run in the compiler: the code they generate is in the binary,
# their own code (and syn, quote, ...) is not. They are listed with scope
# "excluded" so an audit still sees every crate that shaped the build.
everything = closure(True)
linked = {i for i in closure(False) if not is_proc_macro(i)}
seen = everything


def purl(p):
    return f"pkg:cargo/{p['name']}@{p['version']}"


def component(p, kind):
    c = {"type": kind, "bom-ref": purl(p), "name": p["name"], "version": p["version"], "purl": purl(p)}
    if kind == "library":
        c["scope"] = "required" if p["id"] in linked else "excluded"
    if p.get("license"):
        c["licenses"] = [{"expression": p["license"]}]
    if p.get("description"):
        c["description"] = " ".join(p["description"].split())
    sha = checksums.get((p["name"], p["version"]))
    if sha:
        c["hashes"] = [{"alg": "SHA-256", "content": sha}]
    return c


epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
stamp = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
top = packages[root]
bom = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "metadata": {
        "timestamp": stamp,
        "component": component(top, "application"),
        "properties": [{"name": "cargo:target", "value": target}],
    },
    "components": [component(packages[i], "library") for i in sorted(seen - {root}, key=lambda i: (packages[i]["name"], packages[i]["version"]))],
    "dependencies": [
        {"ref": purl(packages[i]), "dependsOn": sorted({purl(packages[d]) for d in normal_deps(i)})}
        for i in sorted(seen, key=lambda i: (packages[i]["name"], packages[i]["version"]))
    ],
}
json.dump(bom, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
