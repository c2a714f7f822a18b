"""Benchmark of copies: tiermover against rclone copy, cp -r and rsync -a on the same data.

    .venv/bin/python bench/copy.py [--scale 1.0] [--sets large,small,s3] [--runs 3]

The benchmark itself is bench/copy_bench.py (its docstring and bench/README.md say what
it measures). This file only starts it, because of its name: a script run from bench/
has this folder first on its path, so `import copy`, which dataclasses and many other
modules of the standard library do, finds this file. Imported that way, it stands in
for the standard library's `copy` module; run as a script, it runs the benchmark.
"""

import os
import sys

if __name__ == "__main__":
    from copy_bench import main

    main()
else:
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        __name__, os.path.join(os.path.dirname(os.__file__), "copy.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _module  # what `import copy` returns once this file has run
    _spec.loader.exec_module(_module)
