"""One scenario of the FoleySpace Blender add-on, run INSIDE Blender's Python (bpy 5.0.1 venv).

Usage: ``python tests/blender/run_case.py ARGS.json`` (``tests/test_blender.py`` drives it).
ARGS: {"case": NAME, "addon": module name of the enabled extension (installed with Blender's
own extension installer into ``$BLENDER_USER_RESOURCES``), "server": address or "", "clip",
"project": folder for the .blend, "mute": bool, ...case fields}. The add-on's timer functions
are driven by hand (bpy as a module has no event loop). Prints one line ``RESULT {json}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from typing import Any

import bpy

FPS = 25


def enable(module: str) -> Any:
    """Enable the installed extension; return its package module."""
    import addon_utils  # on sys.path once bpy is imported

    mod = addon_utils.enable(module, default_set=True, handle_error=None)
    if mod is None:
        raise RuntimeError(f"could not enable {module}")
    return sys.modules[module]


def new_scene(project: str | None) -> tuple[Any, Any]:
    """The startup scene at 25 fps with a sequencer, saved into ``project`` when given (so ``//``
    paths resolve). Each case runs in a fresh process, so nothing else is in it."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    ed = scene.sequence_editor_create()
    if project:
        os.makedirs(project, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=os.path.join(project, "edit.blend"))
    return scene, ed


def strip_info(s: Any) -> dict[str, Any]:
    """Timing of a strip, read through the 5.0 names the add-on's compat layer also uses."""
    info = {"name": s.name, "type": s.type, "channel": s.channel, "left": s.frame_final_start,
            "right": s.frame_final_end, "content_start": s.frame_start, "content_frames": s.frame_duration,
            "mute": s.mute}
    if s.type == "SOUND":
        info.update(filepath=os.path.normpath(bpy.path.abspath(s.sound.filepath)), pan=s.pan,
                    use_mono=s.sound.use_mono, sound_channels=s.sound.channels,
                    job=s.get("foleyspace_job"), source=s.get("foleyspace_source"))
    return info


def run_operator(op: Any, **kwargs: Any) -> str | None:
    """Call an operator; return the error it reported (bpy raises RuntimeError for ERROR reports)."""
    try:
        result = op(**kwargs)
    except RuntimeError as exc:  # Blender formats it as "Error: <report>\n"
        return str(exc).strip()
    return None if "FINISHED" in result else f"operator returned {result}"


def drive(fn: Any, timeout_s: float) -> tuple[int, float | None]:
    """Call a timer function until it returns None (done) or ``timeout_s`` passes."""
    deadline, ticks = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        ticks += 1
        interval = fn()
        if interval is None:
            return ticks, None
        time.sleep(min(interval, 0.05))
    return ticks, -1.0


#: Frames mixed down before and after a stem's range (they must be silent). Blender's mixdown
#: writes a few hundred stale samples after the scene end, so the end is never the range end.
PAD = 10


def mixdown(scene: Any, ed: Any, keep: Any, left: int, right: int, path: str) -> str:
    """Blender's own audio mixdown of frames ``[left - PAD, right + PAD)`` with only ``keep`` audible."""
    saved = {s.name: s.mute for s in ed.strips}
    for s in ed.strips:
        s.mute = s != keep
    scene.frame_start, scene.frame_end = left - PAD, right + PAD - 1
    bpy.ops.sound.mixdown(filepath=path, container="WAV", codec="PCM", format="F32", mixrate=48000)
    for s in ed.strips:
        s.mute = saved[s.name]
    return path


class Layout:
    """Stands in for ``UILayout`` (bpy as a module draws no UI): records every call's text."""

    def __init__(self, log: list[str]) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Layout:
            text = kwargs.get("text")
            if text is None and name == "operator":
                text = args[0]
            elif text is None and name == "prop":
                text = args[1]
            self._log.append(f"{name}:{text}" if text is not None else name)
            return Layout(self._log)

        return call


def draw_ui(pkg: Any) -> list[str]:
    """What the sidebar panel and the context-menu entry draw now."""
    log: list[str] = []
    pkg.ui.SEQUENCER_PT_foleyspace.draw(type("Panel", (), {"layout": Layout(log)})(), bpy.context)
    pkg.ui.draw_context_menu(type("Menu", (), {"layout": Layout(log)})(), bpy.context)
    return log


def timer_registered(session: Any, fn: Any) -> bool:
    """True if the session's timer for ``fn`` (``fn`` bound to the session) is registered with Blender."""
    timer = session.timers.get(fn)
    return timer is not None and bpy.app.timers.is_registered(timer)


def spatialize_and_wait(pkg: Any, timeout_s: float = 90.0) -> dict[str, Any]:
    """Run Spatialize Strip on the active strip and drive the job timer to the end."""
    jobs, session = pkg.jobs, pkg.session.current()
    before = set(session.jobs)
    error = run_operator(bpy.ops.foleyspace.spatialize_strip)
    out: dict[str, Any] = {"submit_error": error, "timer_registered": timer_registered(session, jobs.poll_jobs)}
    new = [session.jobs[j] for j in session.jobs if j not in before]
    if new:
        out["spec_range"] = [new[0].source.start_s, new[0].source.end_s]
        out["job"] = new[0].id
        ticks, last = drive(lambda: jobs.poll_jobs(session), timeout_s)
        out.update(ticks=ticks, timed_out=last == -1.0)
    out.update(message=session.message, message_is_error=session.message_is_error, pending=len(session.jobs))
    return out


def set_prefs(pkg: Any, module: str, args: dict[str, Any]) -> Any:
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.server_address = args.get("server", "")
    prefs.mute_original = bool(args.get("mute", False))
    if "output_dir" in args:
        prefs.output_dir = args["output_dir"]
    if "command" in args:
        prefs.server_command = args["command"]
    return prefs


# ----------------------------------------------------------------------------- cases
def case_trimmed_movie(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """A movie strip trimmed on both sides and moved; channel 3 is taken over the range."""
    scene, ed = new_scene(args["project"])
    clip = args["clip"]
    movie = ed.strips.new_movie("shot", clip, 2, 1)
    movie.filepath = bpy.path.relpath(clip)  # a relative path, as Blender stores by default
    trim_left, trim_right = args["trim"]
    movie.frame_final_start = int(movie.frame_start) + trim_left
    movie.frame_final_end = int(movie.frame_start) + int(movie.frame_duration) - trim_right
    movie.frame_start = args["content_start"]  # moves the strip, trims kept
    paired = ed.strips.new_sound("shot_audio", clip, 1, args["content_start"])  # in sync with the movie
    paired.frame_final_start, paired.frame_final_end = movie.frame_final_start, movie.frame_final_end
    # the same file, not in sync with the movie: not its sound, never muted; it takes channel 3
    ed.strips.new_sound("blocker", clip, 3, movie.frame_final_start + 5)
    ed.strips.new_sound("later", clip, 4, movie.frame_final_end + 10)  # channel 4 is free over the range
    ed.active_strip = movie
    before = {s.name for s in ed.strips}
    out = {"movie": strip_info(movie), "movie_fps": movie.fps, "scene_fps": scene.render.fps}
    out.update(spatialize_and_wait(pkg))
    added = [s for s in ed.strips if s.name not in before]
    out["added"] = [strip_info(s) for s in added]
    out["others"] = {s.name: strip_info(s) for s in ed.strips if s.name in before}
    if len(added) == 1:
        out["mixdown_pad"] = PAD
        out["mixdown"] = mixdown(scene, ed, added[0], movie.frame_final_start, movie.frame_final_end,
                                 os.path.join(args["project"], "mixdown.wav"))
    return out


def case_sound_with_video(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """A sound strip of the clip's own audio, trimmed, with the clip chosen as its video."""
    _, ed = new_scene(args["project"])
    clip = args["clip"]
    sound = ed.strips.new_sound("dialog", clip, 2, 1)
    sound.frame_final_start = int(sound.frame_start) + args["trim"][0]
    sound.frame_final_end = int(sound.frame_start) + int(sound.frame_duration) - args["trim"][1]
    ed.active_strip = sound
    out: dict[str, Any] = {"poll_without_video": bpy.ops.foleyspace.spatialize_strip.poll()}
    out["choose_error"] = run_operator(bpy.ops.foleyspace.choose_video, filepath=clip)
    out["video_prop"] = sound.get("foleyspace_video")
    out["poll_with_video"] = bpy.ops.foleyspace.spatialize_strip.poll()
    out["sound"] = strip_info(sound)
    before = {s.name for s in ed.strips}
    out.update(spatialize_and_wait(pkg))
    out["added"] = [strip_info(s) for s in ed.strips if s.name not in before]
    out["sound_after"] = strip_info(sound)
    # a sound from another file, trimmed on the left: played from the trim point (audio_start_s)
    other = ed.strips.new_sound("music", args["wav"], 5, 1)
    other.frame_final_start = int(other.frame_start) + 10
    other["foleyspace_video"] = clip
    ed.active_strip = other
    before = {s.name for s in ed.strips}
    separate = spatialize_and_wait(pkg)
    out["separate"] = {"submit_error": separate["submit_error"], "spec_range": separate.get("spec_range"),
                       "message_is_error": separate["message_is_error"], "message": separate["message"],
                       "added": [strip_info(s) for s in ed.strips if s.name not in before],
                       "other": strip_info(other)}
    return out


def case_no_server(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Nothing listens at the configured address."""
    _, ed = new_scene(args["project"])
    movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
    ed.active_strip = movie
    count = len(ed.strips)
    t0 = time.monotonic()
    out: dict[str, Any] = {"submit_error": run_operator(bpy.ops.foleyspace.spatialize_strip)}
    out["submit_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    out["check_error"] = run_operator(bpy.ops.foleyspace.check_server)
    out["check_s"] = time.monotonic() - t0
    session = pkg.session.current()
    out.update(added=len(ed.strips) - count, pending=len(session.jobs), server_text=session.server_text,
               message=session.message, timer_registered=timer_registered(session, pkg.jobs.poll_jobs))
    return out


def case_job_fails(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The server accepts the job but the pipeline fails (a clip without audio)."""
    _, ed = new_scene(args["project"])
    movie = ed.strips.new_movie("silent", args["clip"], 2, 1)
    ed.active_strip = movie
    count = len(ed.strips)
    out = spatialize_and_wait(pkg)
    out["added"] = len(ed.strips) - count
    return out


def case_bad_strips(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Strips that cannot be spatialized: no file path, a missing file, unequal fps, not a movie."""
    scene, ed = new_scene(None)
    out: dict[str, Any] = {}
    movie = ed.strips.new_movie("nopath", args["clip"], 2, 1)
    ed.active_strip = movie
    out["panel_ok"] = draw_ui(pkg)
    movie.filepath = ""
    out["no_path"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
    out["panel_no_path"] = draw_ui(pkg)
    movie.filepath = args["clip"] + ".missing.mp4"
    out["missing_file"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
    movie.filepath = args["clip"]
    scene.render.fps = 50
    out["fps_mismatch"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
    scene.render.fps = FPS
    movie.frame_final_end = movie.frame_final_end + 10  # handles past the content: held frames
    out["held_frames"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
    movie.frame_final_end = movie.frame_final_end - 10
    movie.channel = 128  # the last channel: no room above for the stem
    out["no_channel"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
    movie.channel = 2
    color = ed.strips.new_effect("color", "COLOR", 3, 1, length=20)
    ed.active_strip = color
    out["poll_color"] = bpy.ops.foleyspace.spatialize_strip.poll()
    out["panel_color"] = draw_ui(pkg)
    ed.active_strip = None
    out["poll_none"] = bpy.ops.foleyspace.spatialize_strip.poll()
    out["strips"] = len(ed.strips)
    out["pending"] = len(pkg.session.current().jobs)
    return out


def case_start_server(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """"Start Server" with a bad command, then with a working one; then a job from an unsaved .blend."""
    _, ed = new_scene(None)
    server, session = pkg.server, pkg.session.current()
    prefs = bpy.context.preferences.addons[args["addon"]].preferences
    out: dict[str, Any] = {}
    prefs.server_command = "/nonexistent/foleyspace-server serve"
    out["bad_command_error"] = run_operator(bpy.ops.foleyspace.start_server)
    prefs.server_command = args["command"]
    out["start_error"] = run_operator(bpy.ops.foleyspace.start_server)
    out["wait_registered"] = timer_registered(session, server.wait_for_server)
    ticks, last = drive(lambda: server.wait_for_server(session), 90)
    out.update(wait_ticks=ticks, wait_timed_out=last == -1.0, server_ok=session.server_ok,
               server_text=session.server_text)
    out["second_start_error"] = run_operator(bpy.ops.foleyspace.start_server)
    movie = ed.strips.new_movie("shot", args["clip"], 1, 1)
    ed.active_strip = movie
    out["unsaved_error"] = run_operator(bpy.ops.foleyspace.spatialize_strip)  # "//" needs a saved .blend
    out["unsaved_pending"] = len(session.jobs)
    os.makedirs(args["project"], exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(args["project"], "edit.blend"))
    ed = bpy.context.scene.sequence_editor
    ed.active_strip = ed.strips["shot"]
    out.update(spatialize_and_wait(pkg))
    out["added"] = [strip_info(s) for s in ed.strips if s.name != "shot"]
    proc = session.server_proc
    out["server_pid"] = proc.pid if proc else None
    if proc is not None:  # stop what this case started
        try:
            server.client(session, prefs.server_address).shutdown()
            proc.wait(20)
        except Exception:  # noqa: BLE001 - whatever went wrong, do not leave it running
            proc.kill()
            proc.wait(10)
        out["server_exit"] = proc.returncode
    return out


def case_server_dies(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The server is killed while the job is queued or running: the job is given up, not hung."""
    _, ed = new_scene(args["project"])
    pkg.jobs.GIVE_UP_AFTER_S = 3.0
    movie = ed.strips.new_movie("shot", args["clip"], 1, 1)
    ed.active_strip = movie
    out: dict[str, Any] = {"submit_error": run_operator(bpy.ops.foleyspace.spatialize_strip)}
    os.kill(args["server_pid"], signal.SIGKILL)
    session = pkg.session.current()
    ticks, last = drive(lambda: pkg.jobs.poll_jobs(session), 60)
    out.update(ticks=ticks, timed_out=last == -1.0, message=session.message,
               message_is_error=session.message_is_error, pending=len(session.jobs), added=len(ed.strips) - 1)
    return out


def case_cancel(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Three jobs on a two-worker server, then Cancel (all): none is left, cancelled ones add nothing."""
    _, ed = new_scene(args["project"])
    movie = ed.strips.new_movie("shot", args["clip"], 1, 1)
    ed.active_strip = movie
    session = pkg.session.current()
    messages: list[str] = []
    original = session.set_message

    def record(text: str, error: bool = False) -> None:
        messages.append(text)
        original(text, error)

    session.set_message = record  # every message of the session goes through it
    errors = [run_operator(bpy.ops.foleyspace.spatialize_strip) for _ in range(3)]
    out: dict[str, Any] = {"submit_errors": errors, "submitted": len(session.jobs)}
    messages.clear()
    out["cancel_error"] = run_operator(bpy.ops.foleyspace.cancel)
    _, last = drive(lambda: pkg.jobs.poll_jobs(session), 60)
    out.update(pending=len(session.jobs), added=len(ed.strips) - 1, messages=messages, timed_out=last == -1.0)
    return out


def case_placement(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """``place_stem`` directly: stems a fraction of a frame short/long, a locked channel, and a
    strip moved or re-trimmed after its job was submitted."""
    scene, ed = new_scene(args["project"])
    movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
    movie.frame_final_start, movie.frame_final_end = 11, 81  # 70 frames, source 0.4–3.2 s
    source = pkg.source.describe(scene, movie)
    out: dict[str, Any] = {"source": [source.start_s, source.end_s, source.span.left, source.span.right]}

    strip_id = pkg.binding.strip_identity(movie)
    count = iter(range(100))

    def place(stem: str) -> dict[str, Any]:
        job = pkg.jobs.StripJob(f"j{next(count)}", scene.name, "shot", source, stem, False, strip_id=strip_id)
        return strip_info(pkg.stems.place_stem(job, stem))

    out["short"] = place(args["short_wav"])  # 69.4 frames of audio
    ed.channels[4].lock = True
    out["long"] = place(args["long_wav"])  # 70.6 frames, channel 3 now taken, 4 locked
    movie.frame_start += 100  # moved: the same source range, so the stem follows the strip
    out["moved"] = place(args["short_wav"])
    movie.frame_final_end -= 5  # re-trimmed: another range, the stem goes where the strip was
    out["retrimmed"] = place(args["short_wav"])
    out["movie"] = strip_info(movie)
    return out


def stems_of(ed: Any) -> list[dict[str, Any]]:
    """The placed FoleySpace stems among ``ed``'s strips."""
    return [strip_info(s) for s in ed.strips if s.get("foleyspace_job")]


def wait_done(pkg: Any, job_id: str, timeout_s: float = 90.0) -> str:
    """Block (a test, not the add-on) until the server says the job ended; its state."""
    c = pkg.server.Client(pkg.session.current().client.address, timeout=2.0, retries=1)
    try:
        return c.wait(job_id, timeout=timeout_s)["state"]
    finally:
        c.close()


def case_two_files(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Spatialize in a.blend; open b.blend (same scene and strip names): nothing placed there;
    reopen a.blend: placed there."""
    project = args["project"]
    scene, ed = new_scene(None)
    os.makedirs(project, exist_ok=True)
    a, b = os.path.join(project, "a.blend"), os.path.join(project, "b.blend")
    bpy.ops.wm.save_as_mainfile(filepath=a)
    movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
    ed.active_strip = movie
    bpy.ops.wm.save_as_mainfile(filepath=b, copy=True)  # the same scene and strip names, no job
    session = pkg.session.current()
    out: dict[str, Any] = {"submit_error": run_operator(bpy.ops.foleyspace.spatialize_strip)}
    (job_id,) = list(session.jobs)
    out["strip_id"] = movie.get("foleyspace_id")
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=b)
    out["b_followed"] = len(session.jobs)
    out["server_state"] = wait_done(pkg, job_id)
    ticks, _ = drive(lambda: pkg.jobs.poll_jobs(session), 2.0)
    ed = bpy.context.scene.sequence_editor
    out.update(b_file=bpy.data.filepath, b_scene=bpy.context.scene.name, b_strips=[s.name for s in ed.strips],
               b_stems=stems_of(ed), b_shot_id=ed.strips["shot"].get("foleyspace_id"), b_ticks=ticks)
    bpy.ops.wm.open_mainfile(filepath=a)
    out["a_followed"] = len(session.jobs)
    _, last = drive(lambda: pkg.jobs.poll_jobs(session), 30.0)
    ed = bpy.context.scene.sequence_editor
    out.update(timed_out=last == -1.0, message=session.message, message_is_error=session.message_is_error,
               a_stems=stems_of(ed), pending=len(session.jobs), job=job_id)
    return out


def case_restart(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Phase "submit": submit, save, quit without waiting. Phase "reopen" (a new process, after
    the job ended): open the file; its stored job is adopted and its stem placed."""
    path = os.path.join(args["project"], "edit.blend")
    session = pkg.session.current()
    if args["phase"] == "submit":
        _, ed = new_scene(args["project"])
        movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
        movie.name = "renamed later"
        ed.active_strip = movie
        out: dict[str, Any] = {"submit_error": run_operator(bpy.ops.foleyspace.spatialize_strip)}
        movie.name = "shot 2"  # renamed after the submit: found by its identity
        bpy.ops.wm.save_mainfile()
        out.update(jobs=list(session.jobs), store=bpy.context.scene.get("foleyspace_jobs"))
        return out
    bpy.ops.wm.open_mainfile(filepath=path)
    out = {"followed": len(session.jobs), "timer_registered": timer_registered(session, pkg.jobs.poll_jobs)}
    _, last = drive(lambda: pkg.jobs.poll_jobs(session), 30.0)
    ed = bpy.context.scene.sequence_editor
    out.update(timed_out=last == -1.0, message=session.message, message_is_error=session.message_is_error,
               stems=stems_of(ed), pending=len(session.jobs), store=bpy.context.scene.get("foleyspace_jobs"),
               movie=strip_info(ed.strips["shot 2"]))
    return out


def timed_drive(fn: Any, seconds: float) -> tuple[list[float], int]:
    """Call the timer function every 20 ms for ``seconds`` (or until it returns None); the
    duration of each call in seconds (``time.perf_counter``) and the number of calls."""
    ticks: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        interval = fn()
        ticks.append(time.perf_counter() - t0)
        if interval is None:
            break
        time.sleep(0.02)
    return ticks, len(ticks)


def case_stalled_server(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Eight jobs in flight, then the server is killed ("dead") or stopped with SIGSTOP ("hung"):
    every timer tick is timed; in the hung case Cancel is timed too."""
    _, ed = new_scene(args["project"])
    pkg.jobs.GIVE_UP_AFTER_S = 4.0
    session = pkg.session.current()
    movie = ed.strips.new_movie("shot", args["clip"], 1, 1)
    ed.active_strip = movie
    errors = [run_operator(bpy.ops.foleyspace.spatialize_strip) for _ in range(8)]
    out: dict[str, Any] = {"submit_errors": errors, "in_flight": len(session.jobs)}
    drive(lambda: pkg.jobs.poll_jobs(session), 0.5)  # the poller is following them
    os.kill(args["server_pid"], signal.SIGKILL if args["mode"] == "dead" else signal.SIGSTOP)
    ticks, _ = timed_drive(lambda: pkg.jobs.poll_jobs(session), 2.5)
    if args["mode"] == "hung":
        t0 = time.perf_counter()
        out["cancel_error"] = run_operator(bpy.ops.foleyspace.cancel)
        out["cancel_s"] = time.perf_counter() - t0
    more, _ = timed_drive(lambda: pkg.jobs.poll_jobs(session), 8.0)
    ticks += more
    out.update(ticks=len(ticks), max_tick_s=max(ticks), mean_tick_s=sum(ticks) / len(ticks),
               pending=len(session.jobs), message=session.message, message_is_error=session.message_is_error,
               added=len(ed.strips) - 1)
    return out


def case_relative_and_undo(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """A stem placed in a saved project is stored as //…; the placement is one undo step; the
    project folder moved elsewhere still plays the stem."""
    project = args["project"]
    scene, ed = new_scene(project)
    clip = os.path.join(project, "media", "clip.mp4")
    os.makedirs(os.path.dirname(clip))
    with open(args["clip"], "rb") as src, open(clip, "wb") as dst:
        dst.write(src.read())
    movie = ed.strips.new_movie("shot", clip, 2, 21)  # mixdown() starts PAD frames before: not below 0
    movie.filepath = bpy.path.relpath(clip)
    ed.active_strip = movie
    bpy.ops.ed.undo_push(message="set up")  # Blender pushes one after each operator
    out: dict[str, Any] = spatialize_and_wait(pkg)
    ed = bpy.context.scene.sequence_editor
    out["placed"] = stems_of(ed)
    out["raw_filepath"] = [s.sound.filepath for s in ed.strips if s.get("foleyspace_job")]
    out["undo_poll"] = bpy.ops.ed.undo.poll()
    if out["undo_poll"]:
        bpy.ops.ed.undo()
        out["after_undo"] = sorted(s.name for s in bpy.context.scene.sequence_editor.strips)
        bpy.ops.ed.redo()
    ed = bpy.context.scene.sequence_editor
    out["after_redo"] = sorted(s.name for s in ed.strips)
    bpy.ops.wm.save_mainfile()
    moved = args["moved"]
    bpy.ops.wm.read_homefile()  # close the project before moving it
    import shutil

    shutil.move(project, moved)
    bpy.ops.wm.open_mainfile(filepath=os.path.join(moved, "edit.blend"))
    scene = bpy.context.scene
    ed = scene.sequence_editor
    stems = [s for s in ed.strips if s.get("foleyspace_job")]
    out["moved_stems"] = [strip_info(s) | {"raw": s.sound.filepath, "exists": os.path.isfile(
        bpy.path.abspath(s.sound.filepath))} for s in stems]
    if len(stems) == 1:
        out["mixdown_pad"] = PAD
        out["mixdown"] = mixdown(scene, ed, stems[0], stems[0].frame_final_start, stems[0].frame_final_end,
                                 os.path.join(moved, "mixdown.wav"))
    return out


def case_retimed(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Speed effects, Reverse Frames and retiming keys: the spec each strip makes (or the
    refusal), then two of them rendered and placed ("speed2", "reversed")."""
    scene, ed = new_scene(args["project"])
    bpy.context.workspace.sequencer_scene = scene  # the retiming operators edit the sequencer scene
    clip = args["clip"]
    out: dict[str, Any] = {"specs": {}, "errors": {}}

    def spec_of(key: str, strip: Any) -> None:
        try:
            src = pkg.source.describe(scene, strip)
        except pkg.placement.PlacementError as exc:
            out["errors"][key] = str(exc)
            return
        spec = pkg.source.job_spec(src, "/tmp", "x.wav", scene.foleyspace)
        out["specs"][key] = {k: spec.get(k) for k in ("start_s", "end_s", "speed", "hold_s")} | {
            "span": [src.span.channel, src.span.left, src.span.right]}

    def fresh(name: str, channel: int, start: int = 1, length: int = 100) -> Any:
        """A movie strip trimmed to ``length`` frames (a Speed effect takes its input's length)."""
        strip = ed.strips.new_movie(name, clip, channel, start)
        strip.frame_final_end = start + length
        return strip

    # retiming keys first, on the only strip (bpy 5.0.1 mixes retiming keys up between strips)
    m = fresh("keys2", 19, 1)  # two retiming keys: one constant speed (×2)
    ed.active_strip, m.select = m, True
    bpy.ops.sequencer.retiming_key_add(timeline_frame=51)
    m.retiming_keys[1].remove()
    m.retiming_keys[-1].timeline_frame = 51
    out["keys2_frames"] = [k.timeline_frame for k in m.retiming_keys]
    spec_of("keys2", m)
    m.channel = 19
    m2 = fresh("keys3", 21, 1)
    ed.active_strip, m.select, m2.select = m2, False, True
    bpy.ops.sequencer.retiming_key_add(timeline_frame=26)  # an inner key: the speeds are not readable
    spec_of("keys3", m2)
    ed.active_strip, m2.select = None, False

    m = fresh("mult2", 1, 1, 50)
    fx = ed.strips.new_effect("fx mult2", "SPEED", 2, 1, length=50, input1=m)
    fx.speed_control, fx.speed_factor = "MULTIPLY", 2.0
    spec_of("mult2", m)
    spec_of("mult2_effect_active", fx)
    m = fresh("stretch", 4, 201, 50)
    fx = ed.strips.new_effect("fx stretch", "SPEED", 5, 201, length=50, input1=m)  # Stretch is the default
    spec_of("stretch", m)
    m = fresh("half", 7, 401)
    fx = ed.strips.new_effect("fx half", "SPEED", 8, 401, length=100, input1=m)
    fx.speed_control, fx.speed_factor = "MULTIPLY", 0.5
    spec_of("half", m)
    m = fresh("freeze", 10, 601, 40)
    fx = ed.strips.new_effect("fx freeze", "SPEED", 11, 601, length=40, input1=m)
    fx.speed_control, fx.speed_frame_number = "FRAME_NUMBER", 30
    spec_of("freeze", m)
    m = fresh("ramp", 13, 801, 50)
    fx = ed.strips.new_effect("fx ramp", "SPEED", 14, 801, length=50, input1=m)
    fx.speed_control = "MULTIPLY"
    fx.speed_factor = 1.0
    fx.keyframe_insert("speed_factor", frame=801)
    fx.speed_factor = 3.0
    fx.keyframe_insert("speed_factor", frame=850)
    spec_of("ramp", m)
    m = fresh("reversed", 16, 1001)
    m.use_reverse_frames = True
    m.frame_final_start, m.frame_final_end = 1011, 1081
    spec_of("reversed", m)
    for name in ("mult2", "reversed"):
        strip = ed.strips[name]
        ed.active_strip = strip
        before = {s.name for s in ed.strips}
        r = spatialize_and_wait(pkg)
        out[name] = {k: r.get(k) for k in ("submit_error", "timed_out", "message", "message_is_error")}
        out[name]["added"] = [strip_info(s) for s in ed.strips if s.name not in before]
    return out


def case_models(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The Localizer/Depth/Vocabulary/Detect Every/Depth Model settings: the options each choice
    sends; the panel before and after a server check; YOLO-World chosen on a server without its
    weights (refused before anything renders, in the panel's terms, and the server's own refusal
    reworded the same way); then Motion + Box Scale + Detect Every rendered and placed."""
    scene, ed = new_scene(args["project"])
    settings = scene.foleyspace
    movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
    ed.active_strip = movie
    src = pkg.source.describe(scene, movie)
    out: dict[str, Any] = {"defaults": {k: getattr(settings, k) for k in (
        "localizer", "depth", "vocab", "detect_every", "depth_model", "label")}, "options": {}}

    def options(key: str, **values: Any) -> None:
        saved = {k: getattr(settings, k) for k in values}
        for k, v in values.items():
            setattr(settings, k, v)
        out["options"][key] = pkg.source.job_spec(src, "/tmp", "x.wav", settings)["options"]
        for k, v in saved.items():
            setattr(settings, k, v)

    options("default")
    options("yolo", localizer="yolo-world", vocab="imagenet", detect_every=5, depth="box-scale",
            depth_model="large")
    options("yolo_label", localizer="yolo-world", label="dog, puppy", vocab="audioset")
    options("motion", localizer="motion", vocab="vggsound", detect_every=4)
    options("auto_models", vocab="vggsound", detect_every=3, depth_model="metric-outdoor-small")
    options("depth_anything", depth="depth-anything", depth_model="metric-indoor-large")
    try:
        settings.localizer = "yolo"
    except TypeError as exc:
        out["bad_enum"] = str(exc)
    out["enum_items"] = {k: [i.identifier for i in settings.bl_rna.properties[k].enum_items]
                         for k in ("localizer", "depth", "vocab", "depth_model")}
    out["label_tooltip"] = settings.bl_rna.properties["label"].description

    out["panel_unchecked"] = draw_ui(pkg)
    out["check_error"] = run_operator(bpy.ops.foleyspace.check_server)
    session = pkg.session.current()
    out["capabilities"] = {k: {n: r.get("available") for n, r in rows.items()}
                           for k, rows in session.capabilities.items()}
    out["panel_auto"] = draw_ui(pkg)
    settings.localizer = "yolo-world"
    out["panel_yolo"] = draw_ui(pkg)

    count = len(ed.strips)
    session.capabilities = {}  # not checked yet: the submit asks the server itself
    refused = spatialize_and_wait(pkg)
    out["refused"] = refused | {"added": len(ed.strips) - count}
    # the server's own refusal (a server whose hello lists no backends) reads the same way
    checker = pkg.jobs.backends.unavailable
    pkg.jobs.backends.unavailable = lambda *a, **k: None
    try:
        server_refused = spatialize_and_wait(pkg)
    finally:
        pkg.jobs.backends.unavailable = checker
    out["server_refused"] = server_refused | {"added": len(ed.strips) - count}
    settings.localizer = "auto"
    settings.depth = "depth-anything"
    out["depth_refused"] = run_operator(bpy.ops.foleyspace.spatialize_strip)

    # Classic: a Label that names neither people nor a face is refused at submit (panel note too)
    settings.depth, count = "auto", len(ed.strips)
    settings.localizer, settings.label = "classic", "dog"
    out["classic_panel"] = draw_ui(pkg)
    out["classic_refused"] = spatialize_and_wait(pkg) | {"added": len(ed.strips) - count}
    options("classic_person", label="Person, walker", vocab="imagenet", detect_every=4)
    settings.label = ""

    settings.localizer, settings.depth, settings.detect_every = "motion", "box-scale", 5
    before = {s.name for s in ed.strips}
    out["rendered"] = spatialize_and_wait(pkg)
    out["rendered"]["added"] = [strip_info(s) for s in ed.strips if s.name not in before]
    return out


def case_box_keyframes(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Box keyframes from the sidebar on a trimmed, moved movie strip: Add Box Keyframe at two
    frames (their source times), a replaced and a removed one, one outside the visible range,
    a frame off the strip refused; the keyframes survive save and reopen; Localizer Motion with
    boxes refused at submit; then the job with Preview on, rendered and placed. Also the source
    times of keyframes on a reversed strip and under a Speed effect (not rendered)."""
    scene, ed = new_scene(args["project"])
    settings = scene.foleyspace
    clip = args["clip"]
    movie = ed.strips.new_movie("shot", clip, 2, 1)
    trim_left, trim_right = args["trim"]
    movie.frame_final_start = int(movie.frame_start) + trim_left
    movie.frame_final_end = int(movie.frame_start) + int(movie.frame_duration) - trim_right
    movie.frame_start = args["content_start"]  # moved, trims kept
    ed.active_strip = movie
    out: dict[str, Any] = {"movie": strip_info(movie), "add": [], "errors": {}}
    out["poll_remove_empty"] = bpy.ops.foleyspace.remove_box_keyframe.poll()

    def add(frame: int, box: list[float]) -> str | None:
        scene.frame_current = frame
        settings.box_x, settings.box_y, settings.box_w, settings.box_h = box
        return run_operator(bpy.ops.foleyspace.add_box_keyframe)

    for frame, box in args["keys"]:
        out["add"].append(add(frame, box))
    out["add_replace"] = [add(args["keys"][0][0], [1, 2, 30, 30]), pkg.session.current().message]
    out["add_replace"].append(add(args["keys"][0][0], args["keys"][0][1]))  # put back
    out["add_extra"] = add(args["extra_frame"], [5, 5, 20, 20])
    out["count_with_extra"] = len(pkg.source.keyframes_of(movie))
    out["remove_extra"] = run_operator(bpy.ops.foleyspace.remove_box_keyframe,
                                       index=[round(k.t, 3) for k in pkg.source.keyframes_of(movie)].index(
                                           args["extra_time"]))
    out["errors"]["off_strip"] = add(int(movie.frame_final_end) + 5, [1, 1, 10, 10])
    out["add_outside"] = add(args["outside_frame"], [0, 0, 16, 16])
    movie.frame_final_end = args["outside_frame"]  # re-trimmed: that keyframe is now past the right handle
    out["stored"] = movie.get("foleyspace_boxes")
    out["panel"] = draw_ui(pkg)
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath)  # saved and reopened
    scene = bpy.context.scene
    settings, ed = scene.foleyspace, scene.sequence_editor
    movie = ed.strips["shot"]
    ed.active_strip = movie
    out["reloaded"] = [[k.t, list(k.box)] for k in pkg.source.keyframes_of(movie)]
    out["source"] = [pkg.source.describe(scene, movie).start_s, pkg.source.describe(scene, movie).end_s]

    specs: list[dict[str, Any]] = []
    real_spec = pkg.jobs.job_spec

    def recording_spec(*a: Any, **k: Any) -> dict[str, Any]:
        spec = real_spec(*a, **k)
        specs.append(spec)
        return spec

    pkg.jobs.job_spec = recording_spec
    try:
        settings.localizer = "motion"
        out["motion_refused"] = run_operator(bpy.ops.foleyspace.spatialize_strip)
        out["motion_panel"] = draw_ui(pkg)
        out["motion_specs"] = len(specs)
        settings.localizer = "auto"
        settings.preview = True
        before = {s.name for s in ed.strips}
        out["rendered"] = spatialize_and_wait(pkg)
    finally:
        pkg.jobs.job_spec = real_spec
    out["spec"] = specs[-1] if specs else None
    added = [s for s in ed.strips if s.name not in before]
    out["added"] = [strip_info(s) | {"preview_prop": s.get("foleyspace_preview")} for s in added]
    if added:
        ed.active_strip = added[0]
        out["stem_panel"] = draw_ui(pkg)

    # source times through Reverse Frames and a Speed effect (× 2)
    rev = ed.strips.new_movie("rev", clip, 10, 1001)
    rev.use_reverse_frames = True
    rev.frame_final_start, rev.frame_final_end = 1011, 1081
    fast = ed.strips.new_movie("fast", clip, 12, 2001)
    fast.frame_final_end = 2051
    fx = ed.strips.new_effect("fx fast", "SPEED", 13, 2001, length=50, input1=fast)
    fx.speed_control, fx.speed_factor = "MULTIPLY", 2.0
    out["times"] = {"rev": [pkg.source.keyframe_time(scene, rev, f) for f in (1011, 1012, 1080)],
                    "fast": [pkg.source.keyframe_time(scene, fast, f) for f in (2001, 2011, 2050)],
                    "fast_effect": pkg.source.keyframe_time(scene, fx, 2011)}
    return out


def case_renderer_hrtf(pkg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Renderer, Checkpoint, Diffusion Steps, Seed, HRTF Interpolation, HRTF Directions: the options
    each sends (``//`` files made absolute beside the .blend, a fetched set's name as typed); the
    panel shows each where it applies; Diffusion without a Checkpoint and an HRTF Interpolation
    without an HRTF refused at submit; then a measured HRTF with Nearest, and Diffusion with a
    tiny checkpoint (Fast, Seed), rendered and placed."""
    try:  # before the .blend is saved, // files have no folder
        unsaved = pkg.source.setting_file("Checkpoint")("//tiny.pt")
    except pkg.source.PlacementError as exc:
        unsaved = f"refused: {exc}"
    scene, ed = new_scene(args["project"])
    settings = scene.foleyspace
    movie = ed.strips.new_movie("shot", args["clip"], 2, 1)
    ed.active_strip = movie
    src = pkg.source.describe(scene, movie)
    keys = ("renderer", "checkpoint", "diffusion_schedule", "seed", "hrtf_interp", "hrtf_directions", "hrtf")
    out: dict[str, Any] = {"defaults": {k: getattr(settings, k) for k in keys}, "options": {}, "panel": {},
                           "unsaved": unsaved}
    out["enum_items"] = {k: [i.identifier for i in settings.bl_rna.properties[k].enum_items]
                         for k in ("renderer", "diffusion_schedule", "hrtf_interp", "hrtf_directions")}
    out["names"] = {k: settings.bl_rna.properties[k].name for k in keys}

    def apply(values: dict[str, Any]) -> dict[str, Any]:
        saved = {k: getattr(settings, k) for k in values}
        for k, v in values.items():
            setattr(settings, k, v)
        return saved

    def options(key: str, **values: Any) -> None:
        saved = apply(values)
        out["options"][key] = pkg.source.job_spec(src, "/tmp", "x.wav", settings)["options"]
        out["panel"][key] = [line for line in draw_ui(pkg) if line.startswith("prop:")]
        apply(saved)

    options("default")
    options("hrtf_file", hrtf="//heads/ku100.sofa", hrtf_interp="nearest", hrtf_directions="fine")
    options("hrtf_name", hrtf="hutubs:96", hrtf_interp="linear")
    options("no_hrtf_defaults", hrtf_interp="aligned", hrtf_directions="all")
    options("dsp", renderer="dsp", checkpoint="//tiny.pt", seed=5)
    options("diffusion", renderer="diffusion", checkpoint="//tiny.pt")
    options("diffusion_fast", renderer="diffusion", checkpoint="//tiny.pt", diffusion_schedule="fast", seed=3)
    try:
        settings.renderer = "neural"
    except TypeError as exc:
        out["bad_enum"] = str(exc)

    def refused(**values: Any) -> dict[str, Any]:
        saved = apply(values)
        count = len(ed.strips)
        panel = draw_ui(pkg)
        result = spatialize_and_wait(pkg) | {"added": len(ed.strips) - count, "panel": panel}
        apply(saved)
        return result

    out["refused_diffusion"] = refused(renderer="diffusion", checkpoint="")
    out["refused_interp"] = refused(hrtf="", hrtf_interp="nearest")

    def rendered(**values: Any) -> dict[str, Any]:
        saved = apply(values)
        before = {s.name for s in ed.strips}
        result = spatialize_and_wait(pkg)
        result["added"] = [strip_info(s) for s in ed.strips if s.name not in before]
        apply(saved)
        return result

    out["rendered_hrtf"] = rendered(hrtf=args["hrtf"], hrtf_interp="nearest")
    if args.get("checkpoint"):
        out["rendered_diffusion"] = rendered(renderer="diffusion", checkpoint=args["checkpoint"],
                                             diffusion_schedule="fast", seed=3)
    return out


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        args = json.load(fh)
    try:
        pkg = enable(args["addon"])
        set_prefs(pkg, args["addon"], args)
        result = CASES[args["case"]](pkg, args)
        result["blender"] = bpy.app.version_string
    except Exception:  # noqa: BLE001 - reported to the test as text
        result = {"exception": traceback.format_exc()}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
