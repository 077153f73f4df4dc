"""Compares two Autobahn-format index.json files (plain axum vs wsdrain).

Prints a markdown table per case group (passed / non-strict / informational /
failed for each run) and exits 1 if a case that did not fail on the plain
server fails with wsdrain, or if the runs did not cover the same cases.
"""

import json
import sys
from collections import Counter

KINDS = ("passed", "non-strict", "informational", "failed")


def kind(result: dict) -> str:
    behavior, close = result.get("behavior"), result.get("behaviorClose")
    if behavior in ("FAILED", "UNIMPLEMENTED") or close not in ("OK", "INFORMATIONAL"):
        return "failed"
    if behavior == "INFORMATIONAL":
        return "informational"
    if behavior == "NON-STRICT":
        return "non-strict"
    if behavior == "OK":
        return "passed"
    return "failed"


def load(path: str) -> dict[str, str]:
    with open(path) as f:
        index = json.load(f)
    cases: dict[str, str] = {}
    for results in index.values():
        for case, result in results.items():
            cases[case] = kind(result)
    return cases


def group(case: str) -> int:
    return int(case.split(".")[0])


def cell(counts: Counter) -> str:
    return " / ".join(str(counts[k]) for k in KINDS)


def main() -> int:
    plain, wsdrain = load(sys.argv[1]), load(sys.argv[2])
    groups = sorted({group(c) for c in plain} | {group(c) for c in wsdrain})
    print("| group | cases | plain axum: passed / non-strict / informational / failed | wsdrain: passed / non-strict / informational / failed |")
    print("|---|---|---|---|")
    total_p, total_w = Counter(), Counter()
    for g in groups:
        p = Counter(k for c, k in plain.items() if group(c) == g)
        w = Counter(k for c, k in wsdrain.items() if group(c) == g)
        total_p += p
        total_w += w
        n = max(sum(p.values()), sum(w.values()))
        print(f"| {g} | {n} | {cell(p)} | {cell(w)} |")
    print(f"| all | {max(len(plain), len(wsdrain))} | {cell(total_p)} | {cell(total_w)} |")
    status = 0
    if set(plain) != set(wsdrain):
        print(f"case sets differ: {sorted(set(plain) ^ set(wsdrain))[:10]}")
        status = 1
    regressions = sorted(
        (c for c in plain if plain[c] != "failed" and wsdrain.get(c) == "failed"),
        key=lambda c: [int(x) for x in c.split(".")],
    )
    if regressions:
        print(f"FAIL: {len(regressions)} cases pass on plain axum but fail with wsdrain: {regressions[:20]}")
        status = 1
    changed = sorted(
        (c for c in plain if c in wsdrain and plain[c] != wsdrain[c]),
        key=lambda c: [int(x) for x in c.split(".")],
    )
    for c in changed:
        print(f"note: case {c}: plain {plain[c]}, wsdrain {wsdrain[c]}")
    informational = sorted(
        (c for c, k in wsdrain.items() if k in ("informational", "non-strict")),
        key=lambda c: [int(x) for x in c.split(".")],
    )
    print(f"informational / non-strict with wsdrain: {', '.join(f'{c} ({wsdrain[c]})' for c in informational) or 'none'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
