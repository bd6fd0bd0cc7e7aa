"""Install and enable a built extension zip with Blender's own extension installer.

Run INSIDE Blender's Python with ``BLENDER_USER_RESOURCES`` pointing at a scratch folder:
``python tests/blender/install_zip.py ZIP``. Prints ``RESULT {json}`` with the add-on module name.
"""

from __future__ import annotations

import json
import sys
import traceback

import bpy


def main() -> int:
    try:
        result = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default",
                                                          enable_on_install=True)
        modules = [a.module for a in bpy.context.preferences.addons if "foleyspace" in a.module]
        import zmq  # from the extension's wheels, or Blender's Python when built without wheels

        out = {"result": sorted(result), "modules": modules, "zmq": zmq.__file__,
               "extensions": bpy.utils.user_resource("EXTENSIONS")}
    except Exception:  # noqa: BLE001 - reported to the test as text
        out = {"exception": traceback.format_exc()}
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
