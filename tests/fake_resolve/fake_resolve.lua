-- A fake of DaVinci Resolve's Lua scripting API for tests of host_plugins/resolve/foleyspace_resolve.lua.
--
-- The same model and rules as DaVinciResolveScript.py (the Python fake; read its docstring):
-- absolute 1-based everything, endFrame EXCLUSIVE (the item lasts endFrame - startFrame source
-- frames), overlapping records dropped (the earlier item wins) and the rest of the batch placed,
-- malformed clipInfos failing the call, integer frames only, stereo media needing a stereo
-- track, subclip "Start" + GetLeftOffset() == GetSourceStartFrame(), retimed items with the
-- left offset in the warped domain and the true source in GetSourceStart/EndFrame, GetSpeed()
-- from 21.1 only, subframe_precision getters, GetLinkedItems, GetAudioMapping (JSON text), and
-- a bridge that answers nil to any method name the object does not have (GetProduct()).
-- Lists are tables indexed from 1, dicts are tables, as Resolve's README says for Lua.

local M = {}

local ids = 0
local function next_id(prefix)
  ids = ids + 1
  return prefix .. "-" .. ids
end

local function is_int(v)
  return type(v) == "number" and v == math.floor(v) and v == v and v ~= math.huge and v ~= -math.huge
end

-- Resolve's bridge: any capitalised name is callable and answers nil when the object lacks it.
local function bridge(class)
  class.__index = function(_, key)
    local method = rawget(class, key)
    if method ~= nil then return method end
    if type(key) == "string" and key:match("^%u") then
      return function() return nil end
    end
    return nil
  end
  return class
end

local function precision(n, flag)
  if n == 0 then return false end
  if n == 1 and type(flag) == "boolean" then return flag end
  return nil
end

local function frames_value(value, n, flag)
  local p = precision(n, flag)
  if p == nil then return nil end
  if p then return value + 0.0 end
  return math.floor(value + 1e-9)
end

-- ------------------------------------------------------------------ JSON (for GetAudioMapping and test output)
local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i = 1, #v do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local value = v[k]
      if value == nil then value = v[tonumber(k)] end
      parts[#parts + 1] = encode(k) .. ":" .. encode(value)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return encode(tostring(v))
end
M.json_encode = encode

-- ------------------------------------------------------------------ WAV header (ImportMedia)
local function le(bytes, i, n)
  local v = 0
  for k = n - 1, 0, -1 do v = v * 256 + bytes:byte(i + k) end
  return v
end

function M.wav_info(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  if #data < 12 or data:sub(1, 4) ~= "RIFF" or data:sub(9, 12) ~= "WAVE" then return nil end
  local pos, rate, channels, align, size = 13, nil, nil, nil, nil
  while pos + 8 <= #data do
    local id, len = data:sub(pos, pos + 3), le(data, pos + 4, 4)
    if id == "fmt " then
      channels, rate, align = le(data, pos + 10, 2), le(data, pos + 12, 4), le(data, pos + 20, 2)
    elseif id == "data" then
      size = len
      break
    end
    pos = pos + 8 + len + (len % 2)
  end
  if not (rate and channels and align and size) or align == 0 then return nil end
  return {rate = rate, channels = channels, frames = size / align}
end

-- ------------------------------------------------------------------ MediaPoolItem
local MediaPoolItem = bridge({})

local function fps_text(fps)
  if fps == math.floor(fps) then return string.format("%d", fps) end
  return string.format("%.3f", fps)
end

function MediaPoolItem:GetName() return self.name end
function MediaPoolItem:GetMediaId() return self.media_id end
function MediaPoolItem:GetUniqueId() return self.media_id end

function MediaPoolItem:GetClipProperty(key)
  local props = {
    ["Clip Name"] = self.name, ["File Path"] = self.path, FPS = fps_text(self.fps),
    Frames = tostring(self.frames), Start = tostring(self.start), End = tostring(self.start + self.frames - 1),
    In = "", Out = "", ["Audio Ch"] = tostring(self.audio_channels),
    Type = (self.video and self.audio_channels > 0) and "Video + Audio" or (self.video and "Video" or "Audio"),
  }
  if key == nil or key == "" then return props end
  if type(key) ~= "string" then return nil end
  return props[key] or ""
end

function MediaPoolItem:GetAudioMapping()
  local linked = {}
  for i, entry in ipairs(self.linked_audio) do
    linked[tostring(i)] = {channels = entry.channels, offset = entry.offset, path = entry.path}
  end
  local mapping = {embedded_audio_channels = self.audio_channels, track_mapping = {}}
  local text = encode(mapping)
  -- an empty linked_audio must still be an object
  local linked_text = next(linked) and encode(linked) or "{}"
  return text:sub(1, -2) .. ',"linked_audio":' .. linked_text .. "}"
end

local function new_media(args)
  return setmetatable({
    name = args.name, path = args.path, fps = args.fps, frames = args.frames,
    video = args.video ~= false, audio_channels = args.audio_channels or 2, start = args.start or 0,
    linked_audio = args.linked_audio or {}, media_id = next_id("mpi"),
  }, MediaPoolItem)
end

-- ------------------------------------------------------------------ clips and TimelineItem
local function clip_fps(clip)
  return clip.media and clip.media.fps or clip.timeline_fps
end

local function source_span(clip)
  if clip.ramp_span then return clip.ramp_span end
  return math.floor(clip.duration * clip.speed * clip_fps(clip) / clip.timeline_fps + 1e-9)
end

local function left_offset(clip)
  if clip.kind == "audio" then return clip.source_first * clip.timeline_fps / clip_fps(clip) end
  if clip.speed > 0 and not clip.ramp_span then return clip.source_first / clip.speed end
  return clip.source_first
end

local TimelineItem = bridge({})

local function item(clip, timeline, hollow)
  return setmetatable({_clip = clip, _timeline = timeline, _hollow = hollow or false}, TimelineItem)
end
M.item = item

local function getter(name, value_of)
  TimelineItem[name] = function(self, ...)
    if self._hollow then return nil end
    return frames_value(value_of(self._clip), select("#", ...), ...)
  end
end
getter("GetStart", function(c) return c.start end)
getter("GetEnd", function(c) return c.start + c.duration end)
getter("GetDuration", function(c) return c.duration end)
getter("GetLeftOffset", left_offset)

function TimelineItem:GetRightOffset(...)
  local c = self._clip
  if self._hollow or not c.media then return nil end
  return frames_value(c.media.frames - c.source_first - math.abs(source_span(c)), select("#", ...), ...)
end

function TimelineItem:GetName() if not self._hollow then return self._clip.name end end
function TimelineItem:GetUniqueId() if not self._hollow then return self._clip.uid end end
function TimelineItem:GetType() if not self._hollow then return self._clip.kind end end
function TimelineItem:GetMediaPoolItem() if not self._hollow then return self._clip.media end end

function TimelineItem:GetSourceStartFrame()
  local c = self._clip
  if self._hollow or not c.media then return nil end
  return c.media.start + c.source_first
end

function TimelineItem:GetSourceEndFrame()
  local c = self._clip
  if self._hollow or not c.media then return nil end
  local e = c.media.start + c.source_first + source_span(c)
  if c.speed > 0 and math.abs(clip_fps(c) - c.timeline_fps) > 1e-6 then e = e - 1 end
  return e
end

function TimelineItem:GetTrackTypeAndIndex()
  if self._hollow then return nil end
  for _, kind in ipairs({"video", "audio"}) do
    for i, track in ipairs(self._timeline.tracks[kind]) do
      for _, c in ipairs(track.clips) do
        if c == self._clip then return {kind, i} end
      end
    end
  end
  return nil
end

function TimelineItem:GetLinkedItems()
  if self._hollow then return nil end
  local out = {}
  if not self._clip.link then return out end
  for _, kind in ipairs({"video", "audio"}) do
    for _, track in ipairs(self._timeline.tracks[kind]) do
      for _, c in ipairs(track.clips) do
        if c.link == self._clip.link and c ~= self._clip then out[#out + 1] = item(c, self._timeline) end
      end
    end
  end
  return out
end

function TimelineItem:GetSpeed()
  local tl = self._timeline
  if self._hollow or tl.project.version < 21.1 then return nil end
  local c = self._clip
  local percentage = c.ramp_span and 50.0 or math.abs(c.speed) * 100.0
  return {Percentage = percentage, PitchCorrection = false, StretchKeyframesToFit = false, RippleTimeline = false}
end

-- ------------------------------------------------------------------ Timeline
local Timeline = bridge({})

local function rate_of(fps_setting)
  local value = tonumber((tostring(fps_setting):match("^%s*([%d.]+)")))
  local ntsc = math.floor(value * 1.001 + 0.5)
  if math.abs(value - math.floor(value + 0.5)) > 1e-3 then return ntsc * 1000 / 1001 end
  return value
end

local function free(track, s, e)
  for _, c in ipairs(track.clips) do
    if not (e <= c.start or s >= c.start + c.duration) then return false end
  end
  return true
end

local function sort_track(track)
  table.sort(track.clips, function(a, b) return a.start < b.start end)
end

function Timeline:put(kind, args)
  local target = self.tracks[kind][args.track]
  local clip = {
    name = args.name or (args.media and args.media.name) or "Title", start = self.start_frame + args.offset,
    duration = args.duration, source_first = args.left_offset or 0, media = args.media, kind = kind,
    timeline_fps = self.rate, speed = args.speed or 1.0, ramp_span = args.ramp_span, link = nil,
    uid = next_id("item"),
  }
  assert(free(target, clip.start, clip.start + clip.duration), "scenario clips must not overlap")
  target.clips[#target.clips + 1] = clip
  sort_track(target)
  return clip
end

function Timeline:place(args) return self:put("video", args) end
function Timeline:place_audio(args) return self:put("audio", args) end

function Timeline:GetName() return self.name end
function Timeline:GetUniqueId() return self.uid end
function Timeline:GetStartFrame() return self.start_frame end

function Timeline:GetSettings()
  if self.project.version < 21.1 then return nil end
  return {timelineFrameRate = tonumber((self.fps:match("^[%d.]+"))), useCustomSettings = "0"}
end

function Timeline:GetSetting(key)
  if key == "timelineFrameRate" then return self.fps end
  return ""
end

function Timeline:GetEndFrame()
  local last = self.start_frame
  for _, kind in ipairs({"video", "audio"}) do
    for _, track in ipairs(self.tracks[kind]) do
      for _, c in ipairs(track.clips) do last = math.max(last, c.start + c.duration) end
    end
  end
  return last
end

function Timeline:GetTrackCount(kind)
  local tracks = self.tracks[kind]
  return tracks and #tracks or 0
end

function Timeline:track(kind, index)
  local tracks = type(kind) == "string" and self.tracks[kind] or nil
  if not tracks or not is_int(index) or index < 1 or index > #tracks then return nil end
  return tracks[index]
end

function Timeline:GetTrackName(kind, index)
  local t = self:track(kind, index)
  return t and t.name or nil
end

function Timeline:SetTrackName(kind, index, name)
  local t = self:track(kind, index)
  if not t or type(name) ~= "string" then return false end
  t.name = name
  return true
end

function Timeline:GetItemListInTrack(kind, index)
  local t = self:track(kind, index)
  if not t then return nil end
  local out = {}
  for i, c in ipairs(t.clips) do out[i] = item(c, self) end
  return out
end

function Timeline:GetCurrentVideoItem()
  for i = #self.tracks.video, 1, -1 do
    for _, c in ipairs(self.tracks.video[i].clips) do
      if c.start <= self.playhead and self.playhead < c.start + c.duration then return item(c, self) end
    end
  end
  return nil
end

local AUDIO_SUBTYPES = {mono = true, stereo = true, ["5.1"] = true, ["5.1film"] = true, ["7.1"] = true,
                        ["7.1film"] = true, adaptive1 = true, adaptive2 = true}

function Timeline:AddTrack(kind, subtype)
  if kind ~= "video" and kind ~= "audio" and kind ~= "subtitle" then return false end
  if kind == "audio" then
    subtype = subtype or "mono"
    if not AUDIO_SUBTYPES[subtype] then return false end
  elseif subtype ~= nil then
    return false
  end
  local tracks = self.tracks[kind]
  local track = {kind = kind, subtype = subtype or "", name = kind .. " " .. (#tracks + 1), clips = {}}
  tracks[#tracks + 1] = track
  if kind == "audio" and #self.squat_added_audio_tracks > 0 then
    local range = table.remove(self.squat_added_audio_tracks, 1)
    track.clips[1] = {name = "squatter", start = range[1], duration = range[2] - range[1], source_first = 0,
                      kind = "audio", timeline_fps = self.rate, speed = 1.0, uid = next_id("item")}
  end
  return true
end

-- ------------------------------------------------------------------ MediaPool
local MediaPool = bridge({})
local CLIP_INFO_KEYS = {mediaPoolItem = true, startFrame = true, endFrame = true, mediaType = true,
                        trackIndex = true, recordFrame = true}
M.END_FRAME_EXCLUSIVE = true

function MediaPool:add_media(args)
  args.name = args.name or args.path:match("[^/\\]*$")
  if args.name == "" then args.name = "Synthetic" end
  local media = new_media(args)
  self.items[#self.items + 1] = media
  return media
end

function MediaPool:owns(media)
  for _, m in ipairs(self.items) do if m == media then return true end end
  return false
end

function MediaPool:ImportMedia(paths)
  if type(paths) == "string" then paths = {paths} end
  if type(paths) ~= "table" then return {} end
  local added, rate = {}, self.project.timeline.rate
  for _, entry in ipairs(paths) do
    local path = type(entry) == "table" and entry.FilePath or entry
    local info = type(path) == "string" and M.wav_info(path) or nil
    if info then
      local media = new_media({name = path:match("[^/\\]*$"), path = path, fps = rate,
                               frames = math.floor(info.frames / info.rate * rate + 0.5), video = false,
                               audio_channels = info.channels})
      self.items[#self.items + 1] = media
      added[#added + 1] = media
    end
  end
  return added
end

function MediaPool:check(tl, info)
  if type(info) ~= "table" then return nil end
  for k in pairs(info) do if not CLIP_INFO_KEYS[k] then return nil end end
  local media = info.mediaPoolItem
  if getmetatable(media) ~= MediaPoolItem or not self:owns(media) then return nil end
  local media_type, index = info.mediaType, info.trackIndex
  if media_type ~= 1 and media_type ~= 2 then return nil end
  local kind = media_type == 1 and "video" or "audio"
  if (kind == "video" and not media.video) or (kind == "audio" and media.audio_channels == 0) then return nil end
  local default_end = M.END_FRAME_EXCLUSIVE and media.frames or media.frames - 1
  local first, last = info.startFrame or 0, info.endFrame or default_end
  local record = info.recordFrame or tl:GetEndFrame()
  for _, v in ipairs({first, last, record, index or 0.5}) do if not is_int(v) then return nil end end
  local source = M.END_FRAME_EXCLUSIVE and last - first or last - first + 1
  if first < 0 or source < 1 or first + source > media.frames or record < tl.start_frame then return nil end
  local track = tl:track(kind, index)
  if not track then return nil end
  if kind == "audio" and media.audio_channels == 2 and track.subtype ~= "stereo" then return nil end
  local duration = math.floor(source * tl.rate / media.fps + 1e-9)
  if duration < 1 then return nil end
  return track, {name = media.name, start = record, duration = duration, source_first = first, media = media,
                 kind = kind, timeline_fps = tl.rate, speed = 1.0, uid = next_id("item")}
end

function MediaPool:AppendToTimeline(infos)
  local tl = self.project.timeline
  if type(infos) ~= "table" or #infos == 0 then return {} end
  local planned = {}
  for _, info in ipairs(infos) do
    local track, clip = self:check(tl, info)
    if not track then return {} end
    local ok = free(track, clip.start, clip.start + clip.duration)
    for _, p in ipairs(planned) do
      if p[1] == track and not (clip.start + clip.duration <= p[2].start or clip.start >= p[2].start + p[2].duration) then
        ok = false
      end
    end
    if ok then planned[#planned + 1] = {track, clip} end  -- an overlapping record is dropped
  end
  local out = {}
  for i, p in ipairs(planned) do
    if tl.append_mode ~= "phantom" then
      p[1].clips[#p[1].clips + 1] = p[2]
      sort_track(p[1])
    end
    out[i] = item(p[2], tl, tl.append_mode ~= "normal")
  end
  return out
end

-- ------------------------------------------------------------------ Project, manager, app
local Project = bridge({})
function Project:GetName() return self.name end
function Project:GetMediaPool() return self.media_pool end
function Project:GetCurrentTimeline() return self.timeline end
function Project:SetCurrentTimeline(tl)
  if tl ~= self.timeline then return false end
  return true
end
function Project:GetSetting(key)
  if key == "timelineFrameRate" then return self.timeline.fps end
  return ""
end

local Manager = bridge({})
function Manager:GetCurrentProject() return self.project end

local App = bridge({})
function App:GetProjectManager() return self.manager end
function App:GetProductName() return self.studio and "DaVinci Resolve Studio" or "DaVinci Resolve" end
function App:GetVersion() return {self.version[1], self.version[2], self.version[3], self.version[4], ""} end
function App:GetVersionString() return table.concat(self.version, ".") end

local link_groups = 0
function M.link(...)
  link_groups = link_groups + 1
  for _, clip in ipairs({...}) do clip.link = link_groups end
end

--- Scenario: a running Resolve with one project and an empty timeline.
function M.make_resolve(args)
  args = args or {}
  local version = args.version or {21, 1, 1, 3}
  local project = setmetatable({name = args.project or "Demo Project", version = version[1] + version[2] / 10},
                               Project)
  local fps = args.fps or "24"
  local tl = setmetatable({project = project, name = "Timeline 1", fps = fps, rate = rate_of(fps),
                           start_frame = args.start_frame or 86400, uid = next_id("timeline"),
                           tracks = {video = {}, audio = {}, subtitle = {}}, append_mode = "normal",
                           squat_added_audio_tracks = {}}, Timeline)
  tl.playhead = tl.start_frame
  for i = 1, args.video_tracks or 2 do tl.tracks.video[i] = {kind = "video", subtype = "", name = "Video " .. i, clips = {}} end
  for i = 1, args.audio_tracks or 1 do
    tl.tracks.audio[i] = {kind = "audio", subtype = "stereo", name = "Audio " .. i, clips = {}}
  end
  project.timeline = tl
  project.media_pool = setmetatable({project = project, items = {}}, MediaPool)
  local app = setmetatable({manager = setmetatable({project = project}, Manager), version = version,
                            studio = args.studio ~= false}, App)
  app.project, app.timeline, app.media_pool = project, tl, project.media_pool
  return app
end

--- What is on the audio tracks, for assertions: {{track=i, name=..., subtype=..., clips={{start, duration, path}}}}.
function M.audio_state(app)
  local out = {}
  for i, track in ipairs(app.timeline.tracks.audio) do
    local clips = {}
    for k, c in ipairs(track.clips) do
      clips[k] = {start = c.start, duration = c.duration, path = c.media and c.media.path or ""}
    end
    out[i] = {track = i, name = track.name, subtype = track.subtype, clips = clips}
  end
  return out
end

return M
