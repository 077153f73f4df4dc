"""One summary line from a drain client's JSON result (argv[1])."""

import json
import sys

r = json.loads(sys.argv[1])
codes = ", ".join(f"{c} x{n}" for c, n in sorted(r["codes"].items()))
if len(sys.argv) > 2 and sys.argv[2] == "--baseline":
    print(f"{r['code_1001_hint_clean']}/{r['sessions']} sessions closed cleanly with a hint; close codes seen: {codes}")
    sys.exit(0)
print(
    f"{r['code_1001_hint_clean']}/{r['sessions']} sessions: Close 1001 + retry-after-ms hint "
    f"+ clean close; {r['distinct_hints']} distinct hints; "
    f"codes: {codes}; last close {r['last_close_s']:.2f} s after SIGTERM"
)
