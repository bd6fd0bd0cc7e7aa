"""Localizers: where the sounding object is in each frame (the input of eq. 1)."""

from foleyspace.localize.base import BoxTrack, LocalizeRequest, Localizer

__all__ = ["BoxTrack", "LocalizeRequest", "Localizer"]
