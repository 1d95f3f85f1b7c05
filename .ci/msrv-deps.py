"""Fails if a package in the build (this platform's dependency graph, dev-dependencies
included) declares a rust-version newer than ours. Reads `cargo metadata` on stdin; the MSRV
is the first argument."""
import json
import sys


def key(version):
    return tuple(int(x) for x in (version.split(".") + ["0", "0"])[:3])


meta = json.load(sys.stdin)
msrv = sys.argv[1]
used = {node["id"] for node in meta["resolve"]["nodes"]}
newer = [
    "%s %s needs Rust %s" % (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in used and p.get("rust_version") and key(p["rust_version"]) > key(msrv)
]
print("\n".join(newer) or "all %d packages build with Rust %s" % (len(used), msrv))
sys.exit(1 if newer else 0)
