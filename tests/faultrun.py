"""`python tests/faultrun.py ARGS`: the `pyblob ARGS` command line with the fault injector of
`faults.py` installed (armed through the file `FAULT_CONTROL_FILE` names)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Python puts this script's directory first on the path, where tests/objstore would pass for the
# engine's package: faults.py is loaded from its file instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
spec = importlib.util.spec_from_file_location("faults", HERE / "faults.py")
assert spec is not None and spec.loader is not None
faults = importlib.util.module_from_spec(spec)
sys.modules["faults"] = faults
spec.loader.exec_module(faults)
faults.install()

from pyblob.cli import main  # noqa: E402  (after the injector: it wraps the engine's modules)

if __name__ == "__main__":
    main()
