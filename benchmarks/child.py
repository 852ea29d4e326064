"""One workload in a subprocess of its own: ``python -m benchmarks.child NAME ARGS_JSON RESULT``.

Runs :data:`benchmarks.workloads.WORKLOADS` ``[NAME]`` with the JSON
arguments and writes what it measured, with the process's peak resident
memory (``peak_mb``), to the RESULT file as JSON. A failure writes
``{"error": ...}`` and exits with status 1.
"""

from __future__ import annotations

import cProfile
import json
import sys
import traceback
from pathlib import Path

from . import workloads


def main(argv: list[str]) -> int:
    name, raw_args, target = argv
    args = json.loads(raw_args)
    out = Path(target)
    if args.get("profile"):
        workloads.PROFILE = cProfile.Profile()
    try:
        result = workloads.WORKLOADS[name](args)
    except workloads.BenchFailure as error:
        out.write_text(json.dumps({"error": str(error)}))
        return 1
    except Exception as error:
        traceback.print_exc()
        out.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    if workloads.PROFILE is not None:
        workloads.PROFILE.dump_stats(args["profile"])
    result["peak_mb"] = workloads.peak_mb()
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
