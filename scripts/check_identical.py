"""Check that a refactor left the numbers alone, bit for bit (issue 12, "Numbers unchanged").

Runs the three reference comparisons and compares every number of their ``results.json`` with a
recorded copy, ignoring only the wall time:

    python scripts/check_identical.py record results/identical   # before the change
    python scripts/check_identical.py check  results/identical   # after it: exit 1 on any change

* ``softorder compare uci --trials 10 --data-dir ../shared/data``
* ``softorder compare mnist --quick``
* ``softorder compare omniglot --quick --data-dir ../shared/data``

Floats differ in the last bits between machines, so a recording holds for the machine (and the
torch build) that made it: record again on a new machine before changing code. The recorded
``config`` may hold keys that the code no longer gives this benchmark (softorder 0.1 kept every
key of every benchmark), and the code may give keys the recording lacks (keys added since, at
their defaults, e.g. ``core``); both are left out (the new ones are named), every other key must
match.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REFERENCES: dict[str, list[str]] = {
    "uci": ["uci", "--trials", "10", "--data-dir", "{data}"],
    "mnist-quick": ["mnist", "--quick"],
    "omniglot-quick": ["omniglot", "--quick", "--data-dir", "{data}"],
}
IGNORED = {"wall_time_s"}


def strip(obj: Any) -> Any:
    """``results.json`` without the keys that may differ between identical runs."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in IGNORED}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Every place where two JSON values differ, as ``path: old != new`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{path}.{k}: only in one of them" for k in sorted(set(old) ^ set(new))]
        for k in sorted(set(old) & set(new)):
            out += differences(old[k], new[k], f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} != {new!r}"]


def run(name: str, data: str, out: Path) -> dict[str, Any]:
    args = [a.format(data=data) for a in REFERENCES[name]]
    cmd = [sys.executable, "-m", "softorder", "compare", *args, "--out", str(out / name)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return strip(json.loads((out / name / "results.json").read_text()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=("record", "check"))
    p.add_argument("folder", type=Path, help="where the recorded results.json files live")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--only", nargs="+", choices=sorted(REFERENCES), default=sorted(REFERENCES))
    a = p.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.only:
            new = run(name, a.data_dir, Path(tmp))
            ref = a.folder / f"{name}.json"
            if a.mode == "record":
                ref.parent.mkdir(parents=True, exist_ok=True)
                ref.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
                print(f"recorded {ref}")
                continue
            old = strip(json.loads(ref.read_text()))
            if isinstance(old.get("config"), dict) and isinstance(new.get("config"), dict):
                old["config"] = {k: v for k, v in old["config"].items() if k in new["config"]}
                added = sorted(set(new["config"]) - set(old["config"]))
                new["config"] = {k: v for k, v in new["config"].items() if k not in added}
                if added:
                    print(f"{name}: config keys newer than the recording, not compared: {', '.join(added)}")
            diff = differences(old, new)
            failed |= bool(diff)
            print(f"{name}: " + ("identical" if not diff else f"{len(diff)} differences"))
            for line in diff[:20]:
                print("  ", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
