"""Run by test_image.py inside the image, with the image's Python: what the install holds.

``in_image.py ROOTS_JSON PACKAGE_DATA_JSON`` imports every module of every top-level
package, each package in its own interpreter as the commands run them (Locust, under
``loadtests``, patches the interpreter with gevent, which must happen before ``ssl``
loads), then prints as JSON the modules imported and, for each package-data pattern of
pyproject.toml, the files it matches in the installed package.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path


def _modules(root: str) -> list[str]:
    package = importlib.import_module(root)
    names = [root]
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        importlib.import_module(info.name)
        names.append(info.name)
    return names


def _data(package_data: dict[str, list[str]]) -> dict[str, list[str]]:
    found = {}
    for package, patterns in package_data.items():
        root = Path(str(files(package)))
        found[package] = sorted(
            {
                str(p.relative_to(root))
                for pattern in patterns
                for p in root.glob(pattern)
                if p.is_file()
            }
        )
    return found


def main() -> int:
    if sys.argv[1] == "--walk":
        print(json.dumps(_modules(sys.argv[2])))
        return 0
    roots, package_data = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    modules = []
    for root in roots:
        done = subprocess.run(
            [sys.executable, __file__, "--walk", root], capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"importing {root}:\n{done.stderr}", file=sys.stderr)
            return 1
        modules.extend(json.loads(done.stdout))
    print(json.dumps({"modules": modules, "data": _data(package_data)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
