"""`make check-deploy-specs`: every deploy spec checked offline (recops.cicd.specs), one line per
check; exit 1 naming each problem. Then what only a real GitHub run can check."""

from __future__ import annotations

import sys

from recops.cicd.specs import NEEDS_GITHUB, check_all


def main() -> int:
    results = check_all()
    for name, problems in results.items():
        print(f"{name:<16} {'ok' if not problems else f'FAILED ({len(problems)})'}")
        for problem in problems:
            print("    " + problem.replace("\n", "\n    "))
    print("only a real GitHub run can check:")
    for item in NEEDS_GITHUB:
        print(f"  - {item}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
