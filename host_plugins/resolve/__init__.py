"""The DaVinci Resolve Utility script, shipped as ``foleyspace.resolve_plugin`` so that
``foleyspace install resolve`` finds it in any installation (wheel or source tree)."""
