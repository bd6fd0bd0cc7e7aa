"""A real OTIO adapter plug-in for the tests: an interchange format that keeps only video tracks
(as EDL-like formats do), so render-otio must notice that its stems were dropped."""

import opentimelineio as otio


def write_to_file(input_otio, filepath, keep_audio=False):
    copy = input_otio.deepcopy()
    if not keep_audio:
        for track in list(copy.tracks):
            if track.kind == otio.schema.TrackKind.Audio:
                copy.tracks.remove(track)
    otio.adapters.write_to_file(copy, filepath, adapter_name="otio_json")


def read_from_file(filepath):
    return otio.adapters.read_from_file(filepath, adapter_name="otio_json")
