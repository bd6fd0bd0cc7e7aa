--[[
FoleySpace for DaVinci Resolve, Lua edition: binaural stems for timeline clips (Workspace > Scripts).

The twin of foleyspace_resolve.py for Resolve Free 21.1 and later, which runs Lua scripts but no
Python ones. It reads the same clip facts through the same scripting API (subclip start + left
offset, the clip's speed, a linked audio recording), renders each clip with the `foleyspace`
command (`foleyspace submit ... --wait`, which needs `foleyspace serve` running), reads the
outcome from `foleyspace jobs --json`, then imports each stem (MediaPool:ImportMedia) and places
it on a new stereo audio track at its clip's absolute record frame (MediaPool:AppendToTimeline,
endFrame exclusive: see END_FRAME_EXCLUSIVE). Progress and a summary go to the Console.

Settings (environment variables, or the constants below): FOLEYSPACE_CLI (the command, default
"foleyspace"; a full path when Resolve's PATH does not have it), FOLEYSPACE_RESOLVE_TRACK
("current" or a video track number), FOLEYSPACE_RESOLVE_OUTPUT (stem folder),
FOLEYSPACE_RESOLVE_LINKED_AUDIO (1/0), FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED (1/0); the model
settings FOLEYSPACE_RESOLVE_LOCALIZER (auto | yolo-world | motion | classic: people or faces, so the
label must name one), FOLEYSPACE_RESOLVE_DEPTH (auto |
depth-anything | box-scale), FOLEYSPACE_RESOLVE_LABEL (default: the clip's name; empty or "-": no
label, so YOLO-World picks from the vocabulary), FOLEYSPACE_RESOLVE_VOCAB,
FOLEYSPACE_RESOLVE_DETECT_EVERY, FOLEYSPACE_RESOLVE_DEPTH_MODEL, passed as the command's --localizer,
--depth, --label, --vocab, --detect-every and --depth-model; the HRTF and renderer settings
FOLEYSPACE_RESOLVE_HRTF (a SOFA file or a fetched set SET:SUBJECT, e.g. hutubs:96), _HRTF_INTERP,
_HRTF_DIRECTIONS, _RENDERER (auto | dsp | diffusion), _CHECKPOINT, _DIFFUSION_STEPS (standard | fast)
and _SEED, passed as --hrtf, --hrtf-interp, --hrtf-directions, --renderer, --checkpoint,
--diffusion-steps and --seed (checked before anything renders); FOLEYSPACE_RESOLVE_PREVIEW (1/0, or
PREVIEW below) passes --preview: each job also writes <stem>.preview.mp4 beside the stem (the clip with
the stem as its sound and the tracked box drawn), whose path is printed. FOLEYSPACE_HOME and
FOLEYSPACE_SERVER reach the command unchanged. Boxes around the object (the seeded tracker's
keyframes) are not offered: Resolve's scripting API gives no way to draw or read one.

Where each fact about Resolve comes from is in README.md, "What this relies on".
]]

local M = {}

-- ------------------------------------------------------------------ configuration
--- The foleyspace command (FOLEYSPACE_CLI wins); a full path if Resolve's PATH lacks it.
M.FOLEYSPACE_CLI = "foleyspace"
--- Video track to process (a number), or nil for the item under the playhead.
M.TRACK = nil
--- Folder under which each project gets a stem folder (FOLEYSPACE_RESOLVE_OUTPUT wins).
M.OUTPUT_ROOT = "~/FoleySpace Stems"
M.TRACK_NAME = "FoleySpace"
M.USE_LINKED_AUDIO = true
M.ASSUME_NORMAL_SPEED = false
--- MediaPool:AppendToTimeline: true when clipInfo endFrame is the first source frame NOT placed.
--- Blackmagic's README says only "endFrame (float/int)"; live readback on Resolve Studio 21.0
--- and 21.0.4.5 (github.com/samuelgursky/davinci-resolve-mcp issue #82, PR #80) measured it
--- exclusive. Same constant as END_FRAME_EXCLUSIVE in foleyspace_resolve.py.
M.END_FRAME_EXCLUSIVE = true
--- Source frames of slack when comparing a clip's source span with its length (see the .py).
M.SPAN_TOLERANCE_FRAMES = 1.0
M.SPAN_TOLERANCE_MIXED_RATES = 2.5
--- The model backends (the same names as everywhere in FoleySpace; see foleyspace_resolve.py).
--- LOCALIZER: "auto" (YOLO-World when the server has its weights, else motion), "yolo-world",
--- "motion" or "classic" (people or faces, no download; the label must name one)
--- (FOLEYSPACE_RESOLVE_LOCALIZER). DEPTH: "auto", "depth-anything" or "box-scale".
M.LOCALIZER = "auto"
M.DEPTH = "auto"
--- What YOLO-World looks for: nil = each clip's name; "" = no label (it scores every label of VOCAB
--- and follows the best); text = that object, synonyms separated by commas ("dog, puppy").
M.LABEL = nil
--- YOLO-World without a label: "coco", "imagenet", "vggsound", "audioset" or an absolute file of
--- labels; "" = the server's default (coco).
M.VOCAB = ""
--- YOLO-World detects every N-th analysis frame (1-250); nil = every frame.
M.DETECT_EVERY = nil
--- Depth Anything model: "small", "base", "large", "metric-indoor-small", "metric-outdoor-small",
--- "metric-indoor-large", "metric-outdoor-large" or an absolute model folder; "" = the default (small).
M.DEPTH_MODEL = ""
--- Measured HRTF: "" (the built-in spherical head), the absolute path of a SOFA file, or a set fetched
--- on the server's machine (`foleyspace hrtf fetch`) named SET:SUBJECT, e.g. "hutubs:96" (--hrtf).
--- With it HRTF_INTERP "nearest" | "linear" | "aligned" and HRTF_DIRECTIONS "all" | "fine" | "coarse";
--- "" = the default, aligned and all (--hrtf-interp, --hrtf-directions). Same as HRTF... in the .py.
M.HRTF = ""
M.HRTF_INTERP = ""
M.HRTF_DIRECTIONS = ""
--- RENDERER: "auto" (diffusion with a CHECKPOINT, else dsp), "dsp" or "diffusion" (--renderer);
--- CHECKPOINT: the absolute path of a trained checkpoint (--checkpoint); DIFFUSION_STEPS "standard"
--- (50) or "fast" (6), "" = standard (--diffusion-steps); SEED: the sampler's seed as digits, "" = 0
--- (--seed). Same as RENDERER... in the .py.
M.RENDERER = "auto"
M.CHECKPOINT = ""
M.DIFFUSION_STEPS = ""
M.SEED = ""
--- Also write each stem's preview movie, <stem>.preview.mp4 beside it (`foleyspace submit --preview`;
--- FOLEYSPACE_RESOLVE_PREVIEW=1/0). Same setting as PREVIEW in foleyspace_resolve.py.
M.PREVIEW = false
M.LOCALIZERS = {"auto", "yolo-world", "motion", "classic"}
--- Words of a label that the classic localizer finds (as people, as a face): a copy of PEOPLE_WORDS /
--- FACE_WORDS in foleyspace/localize/classic.py, the source of truth (tests/test_resolve_lua.py
--- asserts the copy equals the core's lists).
M.PEOPLE_WORDS = {"person", "people", "pedestrian", "pedestrians", "man", "woman", "child", "human", "walker",
                  "runner", "cyclist", "dancer", "player"}
M.FACE_WORDS = {"face", "faces", "speaker", "head", "talking", "talking head", "voice", "dialogue", "singer",
                "narrator"}
M.DEPTHS = {"auto", "depth-anything", "box-scale"}
M.VOCABULARIES = {"coco", "imagenet", "vggsound", "audioset"}
M.DEPTH_MODELS = {"small", "base", "large", "metric-indoor-small", "metric-outdoor-small", "metric-indoor-large",
                  "metric-outdoor-large"}
M.RENDERERS = {"auto", "dsp", "diffusion"}
M.HRTF_INTERPS = {"nearest", "linear", "aligned"}
M.HRTF_DIRECTION_SETS = {"all", "fine", "coarse"}
M.DIFFUSION_SCHEDULES = {"standard", "fast"}
M.MAX_SEED = "9223372036854775807"  -- 2^63 - 1, kept as digits (a Lua number cannot hold it)
--- The sets a SET:SUBJECT HRTF name may start with: a copy of the keys of CATALOG in
--- foleyspace/hrtf/catalog.py (tests/test_resolve_lua.py asserts the copy equals the core's).
M.HRTF_SETS = {"hutubs", "sadie"}
--- The defaults of the HRTF and diffusion settings: not passed, and not refused without an HRTF or a checkpoint.
M.RENDER_DEFAULTS = {hrtf_interp = "aligned", hrtf_directions = "all", diffusion_steps = "standard", seed = "0"}

--- Where progress and the summary go (Resolve's Console).
M.log = print
local function log(line) M.log(line) end

-- ------------------------------------------------------------------ small helpers
--- obj:method(...), or nil when the object or method is missing or the call fails.
local function call(obj, method, ...)
  if obj == nil then return nil end
  local ok, fn = pcall(function() return obj[method] end)
  if not ok or type(fn) ~= "function" then return nil end
  local args, n = {...}, select("#", ...)
  local ok2, result = pcall(function() return fn(obj, unpack(args, 1, n)) end)
  if not ok2 then return nil end
  return result
end
M.call = call

--- An integral frame number from Resolve (number or numeric text), else nil.
local function toint(value)
  local number = tonumber(value)
  if number == nil or number ~= number or number == math.huge or number == -math.huge then return nil end
  local rounded = math.floor(number + 0.5)
  if math.abs(number - rounded) > 1e-6 then return nil end
  return rounded
end
M.toint = toint

--- Frames per second from Resolve's text or number ("24", "23.976", "29.97 DF"), exact for NTSC.
function M.parse_fps(value)
  local text = value and tostring(value) or ""
  local fps = tonumber(text:match("^%s*(%d+%.?%d*)"))
  if not fps or fps <= 0 then return nil end
  local ntsc = math.floor(fps * 1.001 + 0.5)
  if math.abs(fps - math.floor(fps + 0.5)) > 1e-3 and math.abs(fps - ntsc / 1.001) < 2e-3 then
    return ntsc * 1000 / 1001
  end
  return fps
end

local function is_abs(path)
  return type(path) == "string" and (path:sub(1, 1) == "/" or path:match("^%a:[/\\]") ~= nil or path:sub(1, 2) == "\\\\")
end

local function basename(path)
  return (path:match("([^/\\]*)$"))
end

local function safe_name(text, fallback)
  local name = (text or ""):gsub("[^%w._-]+", "_"):gsub("^[._-]+", ""):gsub("[._-]+$", "")
  if name == "" then return fallback or "clip" end
  return name:sub(1, 80)
end

local function num(x)
  return string.format("%.9f", x):gsub("0+$", ""):gsub("%.$", "")
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- ------------------------------------------------------------------ JSON (the CLI's output)
--- Decode JSON text into Lua values (objects and arrays as tables, null as M.null); nil, err on bad input.
M.null = setmetatable({}, {__tostring = function() return "null" end})

function M.json_decode(text)
  local pos = 1
  local function fail(what) error({json = what .. " at " .. pos}) end
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local map = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}
        if map[e] then
          out[#out + 1] = map[e]
          pos = pos + 2
        elseif e == "u" then
          local code = tonumber(text:sub(pos + 2, pos + 5), 16)
          if not code then fail("bad \\u escape") end
          pos = pos + 6
          if code >= 0xD800 and code <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local low = tonumber(text:sub(pos + 2, pos + 5), 16) or 0
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            pos = pos + 6
          end
          if code < 0x80 then out[#out + 1] = string.char(code)
          elseif code < 0x800 then
            out[#out + 1] = string.char(0xC0 + math.floor(code / 64), 0x80 + code % 64)
          elseif code < 0x10000 then
            out[#out + 1] = string.char(0xE0 + math.floor(code / 4096), 0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
          else
            out[#out + 1] = string.char(0xF0 + math.floor(code / 262144), 0x80 + math.floor(code / 4096) % 64,
                                        0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
          end
        else
          fail("bad escape")
        end
      else
        local stop = text:find('["\\]', pos) or #text + 1
        out[#out + 1] = text:sub(pos, stop - 1)
        pos = stop
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return obj end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local key = str()
        ws()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[key] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    else
      local lit = text:match("^%-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if lit and lit ~= "" and lit ~= "-" then
        pos = pos + #lit
        return tonumber(lit) or fail("bad number")
      end
      for word, v in pairs({["true"] = true, ["false"] = false, null = M.null}) do
        if text:sub(pos, pos + #word - 1) == word then
          pos = pos + #word
          return v
        end
      end
      fail("unexpected character")
    end
  end
  local ok, result = pcall(function()
    local v = value()
    ws()
    if pos <= #text then fail("trailing text") end
    return v
  end)
  if ok then return result end
  return nil, type(result) == "table" and result.json or tostring(result)
end

-- ------------------------------------------------------------------ settings
local function trim(text)
  return (text:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function flag(key, text)
  local v = text:lower():gsub("%s", "")
  if v == "1" or v == "yes" or v == "on" or v == "true" then return true end
  if v == "0" or v == "no" or v == "off" or v == "false" then return false end
  error({script = "FoleySpace: " .. key .. " must be 1 or 0, not '" .. text .. "'"})
end

--- Settings from the constants above and the environment (getenv: a function like os.getenv).
function M.settings(getenv)
  getenv = getenv or os.getenv
  local s = {track = M.TRACK, output_dir = nil, cli = M.FOLEYSPACE_CLI, use_linked_audio = M.USE_LINKED_AUDIO,
             assume_normal_speed = M.ASSUME_NORMAL_SPEED, preview = M.PREVIEW}
  local track = (getenv("FOLEYSPACE_RESOLVE_TRACK") or ""):lower():gsub("%s", "")
  if track == "current" then
    s.track = nil
  elseif track ~= "" then
    if not track:match("^%d+$") or tonumber(track) < 1 then
      error({script = "FoleySpace: FOLEYSPACE_RESOLVE_TRACK must be 'current' or a video track number from 1, not '"
             .. track .. "'"})
    end
    s.track = tonumber(track)
  end
  local out = getenv("FOLEYSPACE_RESOLVE_OUTPUT")
  if out and out ~= "" then s.output_dir = out end
  local cli = getenv("FOLEYSPACE_CLI")
  if cli and cli ~= "" then s.cli = cli end
  local linked = getenv("FOLEYSPACE_RESOLVE_LINKED_AUDIO")
  if linked and linked:match("%S") then s.use_linked_audio = flag("FOLEYSPACE_RESOLVE_LINKED_AUDIO", linked) end
  local assume = getenv("FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED")
  if assume and assume:match("%S") then s.assume_normal_speed = flag("FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED", assume) end
  local preview = getenv("FOLEYSPACE_RESOLVE_PREVIEW")
  if preview and preview:match("%S") then s.preview = flag("FOLEYSPACE_RESOLVE_PREVIEW", preview) end
  s.localizer, s.depth, s.label, s.vocab = M.LOCALIZER, M.DEPTH, M.LABEL, M.VOCAB or ""
  s.detect_every, s.depth_model = M.DETECT_EVERY, M.DEPTH_MODEL or ""
  M.render_defaults(s)
  for key, field in pairs({LOCALIZER = "localizer", DEPTH = "depth", VOCAB = "vocab", DEPTH_MODEL = "depth_model",
                           HRTF = "hrtf", HRTF_INTERP = "hrtf_interp", HRTF_DIRECTIONS = "hrtf_directions",
                           RENDERER = "renderer", CHECKPOINT = "checkpoint", DIFFUSION_STEPS = "diffusion_steps",
                           SEED = "seed"}) do
    local value = trim(getenv("FOLEYSPACE_RESOLVE_" .. key) or "")
    if value ~= "" then s[field] = value end
  end
  local label = getenv("FOLEYSPACE_RESOLVE_LABEL")
  if label ~= nil then
    label = trim(label)
    s.label = label == "-" and "" or label
  end
  local every = trim(getenv("FOLEYSPACE_RESOLVE_DETECT_EVERY") or "")
  if every ~= "" then
    if not every:match("^%d+$") then
      error({script = "FoleySpace: FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number of frames from 1 to 250, "
             .. "not '" .. every .. "'"})
    end
    s.detect_every = tonumber(every)
  end
  M.check_models(s)
  return s
end

local function one_of(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

--- The HRTF and renderer settings of the constants above into settings table s.
function M.render_defaults(s)
  s.hrtf, s.hrtf_interp, s.hrtf_directions = M.HRTF or "", M.HRTF_INTERP or "", M.HRTF_DIRECTIONS or ""
  s.renderer, s.checkpoint = M.RENDERER or "auto", M.CHECKPOINT or ""
  s.diffusion_steps, s.seed = M.DIFFUSION_STEPS or "", tostring(M.SEED or "")
  return s
end

--- Whether an HRTF setting names a fetched set (hutubs:96) rather than a file, as the core reads it.
function M.is_hrtf_name(text)
  local head, tail = text:match("^([^:]*):(.*)$")
  return head ~= nil and one_of(M.HRTF_SETS, head:lower()) and not tail:find("[/\\]")
end

--- Whether an HRTF or diffusion setting is set away from the default.
local function given(s, field)
  local v = s[field]
  return v ~= nil and v ~= "" and v ~= M.RENDER_DEFAULTS[field]
end

--- Refuse (one line, naming the setting) an HRTF or renderer setting the server would refuse.
function M.check_render(s)
  local function refuse(text) error({script = "FoleySpace: " .. text}) end
  for _, c in ipairs({{"HRTF_INTERP", s.hrtf_interp, M.HRTF_INTERPS},
                      {"HRTF_DIRECTIONS", s.hrtf_directions, M.HRTF_DIRECTION_SETS},
                      {"DIFFUSION_STEPS", s.diffusion_steps, M.DIFFUSION_SCHEDULES}}) do
    if c[2] ~= "" and not one_of(c[3], c[2]) then
      refuse("FOLEYSPACE_RESOLVE_" .. c[1] .. " must be one of " .. table.concat(c[3], ", ") .. ", not '" .. c[2] .. "'")
    end
  end
  local seed = s.seed:gsub("^0+(%d)", "%1")
  if seed ~= "" and (not seed:match("^%d+$") or #seed > #M.MAX_SEED or (#seed == #M.MAX_SEED and seed > M.MAX_SEED)) then
    refuse("FOLEYSPACE_RESOLVE_SEED must be a whole number from 0 to " .. M.MAX_SEED .. ", not '" .. s.seed .. "'")
  end
  s.seed = seed
  for _, c in ipairs({{"HRTF", s.hrtf, "a SOFA file, or a fetched set named SET:SUBJECT (hutubs:96, sadie:H3)"},
                      {"CHECKPOINT", s.checkpoint, "a trained checkpoint"}}) do
    if c[2] ~= "" and not (c[1] == "HRTF" and M.is_hrtf_name(c[2])) then
      if not is_abs(c[2]) then refuse("FOLEYSPACE_RESOLVE_" .. c[1] .. " must be the absolute path of " .. c[3]
                                      .. ", not '" .. c[2] .. "'") end
      if not file_exists(c[2]) then refuse("FOLEYSPACE_RESOLVE_" .. c[1] .. ": no such file: " .. c[2]) end
    end
  end
  for _, field in ipairs({"hrtf_interp", "hrtf_directions"}) do
    if given(s, field) and s.hrtf == "" then
      refuse("FOLEYSPACE_RESOLVE_" .. field:upper() .. " is a setting of a measured HRTF, but FOLEYSPACE_RESOLVE_HRTF "
             .. "is not set")
    end
  end
  if s.renderer == "diffusion" and s.checkpoint == "" then
    refuse("FOLEYSPACE_RESOLVE_RENDERER=diffusion needs FOLEYSPACE_RESOLVE_CHECKPOINT, the absolute path of a trained "
           .. "checkpoint")
  end
  for _, field in ipairs({"checkpoint", "diffusion_steps", "seed"}) do
    if given(s, field) and s.renderer == "dsp" then
      refuse("FOLEYSPACE_RESOLVE_" .. field:upper() .. " is a setting of the diffusion renderer, but "
             .. "FOLEYSPACE_RESOLVE_RENDERER is dsp")
    end
    if given(s, field) and s.checkpoint == "" then
      refuse("FOLEYSPACE_RESOLVE_" .. field:upper() .. " is a setting of the diffusion renderer: set "
             .. "FOLEYSPACE_RESOLVE_CHECKPOINT too")
    end
  end
end

--- The `foleyspace submit` flags of the HRTF and renderer settings not at their default.
function M.render_args(s)
  local args = {}
  local function add(flag_name, value) args[#args + 1] = flag_name args[#args + 1] = value end
  if s.hrtf ~= "" then
    add("--hrtf", s.hrtf)
    if given(s, "hrtf_interp") then add("--hrtf-interp", s.hrtf_interp) end
    if given(s, "hrtf_directions") then add("--hrtf-directions", s.hrtf_directions) end
  end
  if s.renderer ~= "auto" then add("--renderer", s.renderer) end
  if s.checkpoint ~= "" then
    add("--checkpoint", s.checkpoint)
    if given(s, "diffusion_steps") then add("--diffusion-steps", s.diffusion_steps) end
    if given(s, "seed") then add("--seed", s.seed) end
  end
  return args
end

--- Refuse (one line, naming the setting) a model setting the server would refuse.
function M.check_models(s)
  local function refuse(text) error({script = "FoleySpace: " .. text}) end
  for _, c in ipairs({{"LOCALIZER", s.localizer, M.LOCALIZERS}, {"DEPTH", s.depth, M.DEPTHS},
                      {"RENDERER", s.renderer, M.RENDERERS}}) do
    if not one_of(c[3], c[2]) then
      refuse("FOLEYSPACE_RESOLVE_" .. c[1] .. " must be one of " .. table.concat(c[3], ", ") .. ", not '"
             .. tostring(c[2]) .. "'")
    end
  end
  for _, c in ipairs({{"VOCAB", s.vocab, M.VOCABULARIES, "a file of labels"},
                      {"DEPTH_MODEL", s.depth_model, M.DEPTH_MODELS, "a model folder"}}) do
    if c[2] ~= "" and not one_of(c[3], c[2]) and not is_abs(c[2]) then
      refuse("FOLEYSPACE_RESOLVE_" .. c[1] .. " must be one of " .. table.concat(c[3], ", ")
             .. " or the absolute path of " .. c[4] .. ", not '" .. c[2] .. "'")
    end
  end
  local every = s.detect_every
  if every ~= nil and (type(every) ~= "number" or every ~= math.floor(every) or every < 1 or every > 250) then
    refuse("FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number of frames from 1 to 250, not " .. tostring(every))
  end
  if s.label ~= nil and #s.label > 200 then refuse("FOLEYSPACE_RESOLVE_LABEL holds more than 200 characters") end
  if (s.localizer == "motion" or s.localizer == "classic") and (s.vocab ~= "" or every ~= nil) then
    refuse("FOLEYSPACE_RESOLVE_" .. (s.vocab ~= "" and "VOCAB" or "DETECT_EVERY")
           .. " is a setting of the yolo-world localizer, but FOLEYSPACE_RESOLVE_LOCALIZER is " .. s.localizer)
  end
  if s.label ~= nil then M.check_labels(s, {""}) end
  if s.depth == "box-scale" and s.depth_model ~= "" then
    refuse("FOLEYSPACE_RESOLVE_DEPTH_MODEL is a setting of the depth-anything depth, but FOLEYSPACE_RESOLVE_DEPTH "
           .. "is box-scale")
  end
  M.check_render(s)
end

--- The label sent for a clip: LABEL, else the clip's name ("" sends none).
function M.label_for(s, clip_name)
  local label = s.label
  if label == nil then label = clip_name end
  return trim(label):sub(1, 200)
end

--- Whether a label (synonyms separated by commas) names people or a face (classic.detector_for).
function M.names_people_or_face(label)
  for word in (label .. ","):gmatch("([^,]*),") do
    word = trim(word):lower()
    if one_of(M.PEOPLE_WORDS, word) or one_of(M.FACE_WORDS, word) then return true end
  end
  return false
end

--- Refuse (one line) the classic localizer with a clip label that names neither people nor a face.
function M.check_labels(s, clip_names)
  if s.localizer ~= "classic" then return end
  local bad, seen = {}, {}
  for _, name in ipairs(clip_names) do
    local label = M.label_for(s, name)
    if not M.names_people_or_face(label) and not seen[label] then
      seen[label] = true
      bad[#bad + 1] = label
    end
  end
  if #bad == 0 then return end
  local what
  if s.label ~= nil then
    what = "FOLEYSPACE_RESOLVE_LABEL '" .. s.label .. "'"
  else
    local shown = {}
    for i = 1, math.min(#bad, 3) do shown[i] = "'" .. bad[i] .. "'" end
    what = "the label (each clip's name by default) " .. table.concat(shown, ", ")
           .. (#bad > 3 and (" and " .. (#bad - 3) .. " more") or "")
  end
  error({script = "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but " .. what
         .. " names neither; set FOLEYSPACE_RESOLVE_LABEL=person|face"})
end

-- ------------------------------------------------------------------ reading the timeline
local function skip(reason) error({skip = reason}) end

local function clip_properties(media)
  local props = call(media, "GetClipProperty")
  return type(props) == "table" and props or {}
end

local function clip_property(media, props, key)
  local v = props[key]
  if v == nil or v == "" then v = call(media, "GetClipProperty", key) end
  return v
end

local function norm(path)
  return (path:gsub("\\", "/"))
end

function M.item_name(item)
  local name = call(item, "GetName")
  if type(name) == "string" and name ~= "" then return name end
  local start = toint(call(item, "GetStart"))
  return start and ("item at frame " .. start) or "unnamed item"
end

function M.timeline_fps(project, timeline)
  local settings = call(timeline, "GetSettings")
  local fps = type(settings) == "table" and M.parse_fps(settings.timelineFrameRate) or nil
  fps = fps or M.parse_fps(call(timeline, "GetSetting", "timelineFrameRate"))
  fps = fps or M.parse_fps(call(project, "GetSetting", "timelineFrameRate"))
  if not fps then error({script = "FoleySpace: cannot read the timeline frame rate (timelineFrameRate)."}) end
  return fps
end

local function position(item)
  local start, stop = toint(call(item, "GetStart")), toint(call(item, "GetEnd"))
  local frames = (start and stop) and stop - start or toint(call(item, "GetDuration"))
  if not start or not frames then skip("Resolve returned no position for this item") end
  if frames <= 0 then skip("item has no length (" .. frames .. " frames)") end
  return start, frames
end

local function reported_percentage(item)
  local options = call(item, "GetSpeed")
  local v = type(options) == "table" and options.Percentage or nil
  if type(v) ~= "number" or v ~= v or math.abs(v) == math.huge then return nil end
  return v
end

local function source_frames(item)
  local first, stop = toint(call(item, "GetSourceStartFrame")), toint(call(item, "GetSourceEndFrame"))
  if not first or not stop or (first == 0 and stop == 0) then return nil end
  return first, stop
end

--- The item's constant speed, as foleyspace_resolve.item_speed decides it.
function M.item_speed(item, frames, fps, clip_fps, settings)
  local expected = frames * clip_fps / fps
  local mixed = math.abs(clip_fps - fps) > 1e-6
  local tolerance = (mixed and M.SPAN_TOLERANCE_MIXED_RATES or M.SPAN_TOLERANCE_FRAMES) / expected
  local first, stop = source_frames(item)
  local measured = first and (stop - first) / expected or nil
  local reported = reported_percentage(item)
  if reported == nil then
    if measured == nil then
      if settings.assume_normal_speed then return 1.0 end
      skip("cannot verify the clip's speed: Resolve returns no source frames for it (GetSourceStartFrame/"
           .. "GetSourceEndFrame need Resolve 19.0.2 or later); set FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED=1 "
           .. "if it plays at 100 %")
    end
    if math.abs(measured - 1.0) <= tolerance then return 1.0 end
    skip(string.format("the clip is retimed (it plays about %.0f %% of its source) and this Resolve version "
         .. "cannot say whether the speed is constant; retimed clips need Resolve 21.1 or later "
         .. "(TimelineItem.GetSpeed)", measured * 100))
  end
  local magnitude = math.abs(reported) / 100.0
  if measured == nil then
    if magnitude == 1.0 and reported > 0 then return 1.0 end
    skip(string.format("Resolve reports %g %% speed but no source frames to confirm it; render this clip "
         .. "from an exported timeline (foleyspace render-otio) instead", reported))
  end
  if math.abs(math.abs(measured) - magnitude) > tolerance then
    skip(string.format("variable speed (a speed ramp?): Resolve reports %g %% but the clip covers %d source "
         .. "frames in %d timeline frames (about %.0f %%); only constant speeds can be rendered",
         reported, stop - first, frames, measured * 100))
  end
  if magnitude == 0 then return 0.0 end
  if reported < 0 and measured > 0 then
    skip(string.format("Resolve reports %g %% speed but the clip plays its source forwards", reported))
  end
  return measured < 0 and -magnitude or magnitude
end

--- start_s, end_s, hold_s of the source range the picture shows (see the .py's _source_range).
function M.source_range(item, first, frames, fps, clip_fps, speed)
  local timeline_s = frames / fps
  if speed == 1.0 then
    local start_s = first / clip_fps
    return start_s, start_s + timeline_s, nil
  end
  local shown = source_frames(item)
  if not shown then skip("Resolve returns no source frames for this retimed clip") end
  if speed == 0 then return shown / clip_fps, nil, timeline_s end
  if speed > 0 then
    local start_s = shown / clip_fps
    return start_s, start_s + speed * timeline_s, nil
  end
  local end_s = (shown + 1) / clip_fps
  local start_s = end_s - math.abs(speed) * timeline_s
  if start_s < -0.5 / clip_fps then skip("the reversed clip's source range starts before its media") end
  return math.max(0.0, start_s), end_s, nil
end

local function track_kind(item)
  local where = call(item, "GetTrackTypeAndIndex")
  if type(where) == "table" and type(where[1]) == "string" then return where[1], toint(where[2]) end
  local kind = call(item, "GetType")
  return type(kind) == "string" and kind or nil, nil
end

local function mapped_audio(clip, media)
  local text = call(media, "GetAudioMapping")
  if type(text) ~= "string" or not text:match("%S") then return end
  local mapping = M.json_decode(text)
  local linked = type(mapping) == "table" and mapping.linked_audio or nil
  local entries = {}
  if type(linked) == "table" then
    for _, v in pairs(linked) do if type(v) == "table" then entries[#entries + 1] = v end end
  end
  if #entries == 0 then return end
  if #entries > 1 then
    clip.notes[#clip.notes + 1] = #entries .. " audio files are linked to the clip; using the clip's own sound "
                                  .. "(link one on the timeline to choose)"
    return
  end
  local path, offset = entries[1].path, entries[1].offset
  if not is_abs(path) then return end
  if offset ~= 0 or clip.speed ~= 1.0 then
    local why = clip.speed ~= 1.0 and "is retimed"
                or ("is linked with an offset of " .. tostring(offset) .. " samples at a rate Resolve does not report")
    clip.notes[#clip.notes + 1] = "the clip " .. why .. "; its linked audio " .. basename(path)
                                  .. " is not used, the clip's own sound is"
    return
  end
  clip.audio, clip.audio_start_s = path, clip.start_s
  clip.notes[#clip.notes + 1] = "sound from the linked audio " .. basename(path) .. " (audio mapping)"
end

--- Use a linked audio item from another recording (lowest audio track) as the clip's sound.
function M.linked_audio(clip, item, media, fps)
  local own_id = call(media, "GetMediaId")
  local best
  for _, other in ipairs(call(item, "GetLinkedItems") or {}) do
    local kind, track = track_kind(other)
    local other_media = kind == "audio" and call(other, "GetMediaPoolItem") or nil
    if other_media and not (own_id ~= nil and call(other_media, "GetMediaId") == own_id) then
      local props = clip_properties(other_media)
      local path = clip_property(other_media, props, "File Path")
      if is_abs(path) and norm(path) ~= norm(clip.video) and (best == nil or (track or 1e9) < best.track) then
        best = {item = other, media = other_media, props = props, path = path, track = track or 1e9}
      end
    end
  end
  if not best then return mapped_audio(clip, media) end
  local base = basename(best.path)
  local percentage = reported_percentage(best.item)
  if percentage ~= nil and percentage ~= 100 then
    clip.notes[#clip.notes + 1] = string.format("the linked audio %s plays at %g %%; using the clip's own sound",
                                                base, percentage)
    return
  end
  local a_start, a_left = toint(call(best.item, "GetStart")), toint(call(best.item, "GetLeftOffset"))
  if not a_start or not a_left then
    clip.notes[#clip.notes + 1] = "Resolve returned no position for the linked audio " .. base
                                  .. "; using the clip's own sound"
    return
  end
  local a_fps = M.parse_fps(clip_property(best.media, best.props, "FPS")) or fps
  local sub_start = toint(clip_property(best.media, best.props, "Start")) or 0
  local offset_s = sub_start / a_fps + a_left / fps + (clip.record_frame - a_start) / fps
  if offset_s < 0 then
    clip.notes[#clip.notes + 1] = "the linked audio " .. base .. " starts after the picture; using the clip's own sound"
    return
  end
  clip.audio, clip.audio_start_s = best.path, offset_s
  clip.notes[#clip.notes + 1] = string.format("sound from the linked audio %s from %.3f s", base, offset_s)
end

--- The clip facts of one item: a table like foleyspace_resolve.Clip; error({skip=...}) if unusable.
function M.clip_from_item(item, fps, settings)
  local name = M.item_name(item)
  local media = call(item, "GetMediaPoolItem")
  if media == nil then skip("no media pool item (a generator, title or compound clip?)") end
  local props = clip_properties(media)
  local video = clip_property(media, props, "File Path")
  if type(video) ~= "string" or not video:match("%S") then skip("clip has no file path") end
  if not is_abs(video) then skip("clip file path is not absolute: " .. video) end
  local start, frames = position(item)
  local left = toint(call(item, "GetLeftOffset"))
  if not left or left < 0 then skip("Resolve returned no source offset (GetLeftOffset) for this item") end
  local clip_fps = M.parse_fps(clip_property(media, props, "FPS")) or fps
  local sub_start = toint(clip_property(media, props, "Start")) or 0
  local speed = M.item_speed(item, frames, fps, clip_fps, settings)
  local start_s, end_s, hold_s = M.source_range(item, sub_start + left, frames, fps, clip_fps, speed)
  local clip = {name = name, video = video, start_s = start_s, end_s = end_s, hold_s = hold_s, speed = speed,
                record_frame = start, frames = frames, fps = fps, notes = {}}
  if settings.use_linked_audio then M.linked_audio(clip, item, media, fps) end
  if hold_s and not clip.audio then
    skip("a freeze frame plays none of the clip's sound; link a separate recording to it on the timeline "
         .. "to spatialize that sound")
  end
  return clip
end

--- Seconds the clip lasts on the timeline.
function M.timeline_s(clip)
  if clip.hold_s then return clip.hold_s end
  return (clip.end_s - clip.start_s) / (math.abs(clip.speed) > 0 and math.abs(clip.speed) or 1)
end

-- ------------------------------------------------------------------ the foleyspace command
local windows = package.config:sub(1, 1) == "\\"

local function quote(arg)
  if windows then return '"' .. arg:gsub('"', '\\"') .. '"' end
  return "'" .. arg:gsub("'", "'\\''") .. "'"
end

--- Run `cli args...`; returns stdout+stderr text and the exit status.
function M.run(cli, args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  local line = cli .. " " .. table.concat(parts, " ") .. " 2>&1"
  if windows then
    line = 'cmd /v:on /c "' .. line .. ' & echo __FOLEYSPACE_RC=!ERRORLEVEL!"'
  else
    line = line .. '; echo "__FOLEYSPACE_RC=$?"'
  end
  local pipe = io.popen(line, "r")
  if not pipe then return "cannot start " .. cli, 127 end
  local out = pipe:read("*a") or ""
  pipe:close()
  local rc = tonumber(out:match("__FOLEYSPACE_RC=(%d+)%s*$")) or 127
  out = out:gsub("__FOLEYSPACE_RC=%d+%s*$", "")
  return out, rc
end

--- The `foleyspace submit` arguments for a clip (the CLI's flags for the job-spec fields);
--- settings: M.settings() (nil: the constants above), for the label and the model flags.
function M.submit_args(clip, stem_path, settings)
  local s = settings or M.render_defaults({localizer = M.LOCALIZER, depth = M.DEPTH, label = M.LABEL,
                                          vocab = M.VOCAB or "", detect_every = M.DETECT_EVERY,
                                          depth_model = M.DEPTH_MODEL or "", preview = M.PREVIEW})
  local label = M.label_for(s, clip.name)
  local args = {"submit", clip.video, "-o", stem_path, "--in", (num(clip.start_s))}
  if label ~= "" then
    args[#args + 1] = "--label"
    args[#args + 1] = label
  end
  if clip.hold_s then
    args[#args + 1] = "--speed=0"
    args[#args + 1] = "--hold"
    args[#args + 1] = num(clip.hold_s)
  else
    args[#args + 1] = "--out"
    args[#args + 1] = num(clip.end_s)
    if clip.speed ~= 1.0 then args[#args + 1] = "--speed=" .. num(clip.speed) end
  end
  if clip.audio then
    args[#args + 1] = "--audio"
    args[#args + 1] = clip.audio
    args[#args + 1] = "--audio-start"
    args[#args + 1] = num(clip.audio_start_s or 0)
  end
  local function add(flag_name, value) args[#args + 1] = flag_name args[#args + 1] = value end
  if s.localizer and s.localizer ~= "auto" then add("--localizer", s.localizer) end
  if s.depth and s.depth ~= "auto" then add("--depth", s.depth) end
  if s.vocab and s.vocab ~= "" and label == "" then add("--vocab", s.vocab) end  -- a label names the object
  if s.detect_every then add("--detect-every", tostring(math.floor(s.detect_every))) end
  if s.depth_model and s.depth_model ~= "" then add("--depth-model", s.depth_model) end
  for _, a in ipairs(M.render_args(s)) do args[#args + 1] = a end
  if s.preview then args[#args + 1] = "--preview" end  -- no name: <stem>.preview.mp4 beside the stem
  args[#args + 1] = "--wait"
  args[#args + 1] = "-q"
  return args
end

local function last_line(text)
  local line = ""
  for l in text:gmatch("[^\r\n]+") do if l:match("%S") then line = l end end
  return line
end

--- The job's record from `foleyspace jobs --json` (its result: stem, duration_s), or nil.
local function job_record(cli, job)
  local out, rc = M.run(cli, {"jobs", "--json", "--limit", "500"})
  if rc ~= 0 then return nil end
  local jobs = M.json_decode(out)
  if type(jobs) ~= "table" then return nil end
  for _, status in ipairs(jobs) do
    if type(status) == "table" and status.job == job then return status end
  end
  return nil
end

--- Render one clip with the CLI; returns {path, duration_s} or nil, reason (and, for a model the
--- server lacks, the one-line message that stops the run).
function M.render(cli, clip, stem_path, settings)
  local out, rc = M.run(cli, M.submit_args(clip, stem_path, settings))
  local job = out:match("^%s*(%S+)")
  if rc ~= 0 then
    local why = last_line(out):gsub("^foleyspace: error: ", "")
    if rc == 127 then why = "cannot run '" .. cli .. "' (set FOLEYSPACE_CLI to the foleyspace command): " .. why end
    local kind, name, missing = why:match("^job spec: '(%l+)': '([^']+)': (.*)$")
    if kind == "localizer" or kind == "depth" or kind == "renderer" then  -- every clip would meet it: stop the run
      local key = "FOLEYSPACE_RESOLVE_" .. kind:upper()
      return nil, why, "FoleySpace: " .. key .. "=" .. name .. " is not available on the FoleySpace server: "
                       .. missing .. "; or set " .. key .. " to auto"
    end
    return nil, why
  end
  local record = job and job_record(cli, job) or nil
  if record and record.state ~= "done" then return nil, "job " .. job .. " ended as " .. tostring(record.state) end
  local result = record and type(record.result) == "table" and record.result or {}
  local path = type(result.stem) == "string" and result.stem or out:match("wrote ([^\r\n]+)") or stem_path
  if not file_exists(path) then return nil, "the command reported " .. path .. " but it is not there" end
  local duration = type(result.duration_s) == "number" and result.duration_s or M.timeline_s(clip)
  local preview = type(result.preview) == "string" and result.preview ~= "" and result.preview or nil
  if preview and not file_exists(preview) then preview = nil end
  return {path = path, duration_s = duration, job = job, preview = preview}
end

--- Whether the CLI knows the time-warp flags (retimed clips need --speed and --hold).
function M.cli_has_speed(cli)
  local out, rc = M.run(cli, {"submit", "--help"})
  return rc == 0 and out:find("--speed", 1, true) ~= nil
end

-- ------------------------------------------------------------------ placing on the timeline
function M.end_frame(first, frames)
  if M.END_FRAME_EXCLUSIVE then return first + frames end
  return first + frames - 1
end

local function add_stereo_track(timeline)
  if not call(timeline, "AddTrack", "audio", "stereo") then
    error({script = "FoleySpace: Resolve refused to add a stereo audio track."})
  end
  local index = toint(call(timeline, "GetTrackCount", "audio"))
  if not index or index == 0 then error({script = "FoleySpace: Resolve added an audio track but reports none."}) end
  call(timeline, "SetTrackName", "audio", index, M.TRACK_NAME)
  return index
end

local function on_track(timeline, track, record_frame)
  for _, it in ipairs(call(timeline, "GetItemListInTrack", "audio", track) or {}) do
    if toint(call(it, "GetStart")) == record_frame then return it end
  end
  return nil
end

local function append(media_pool, timeline, media, track, record_frame, frames)
  local info = {mediaPoolItem = media, startFrame = 0, endFrame = M.end_frame(0, frames), mediaType = 2,
                trackIndex = track, recordFrame = record_frame}
  local result = call(media_pool, "AppendToTimeline", {info})
  if type(result) ~= "table" or #result == 0 then
    return nil, "Resolve refused to place it on audio track " .. track .. " at frame " .. record_frame
  end
  local start = toint(call(result[1], "GetStart"))
  if start ~= nil then
    if start ~= record_frame then return nil, "Resolve placed it at frame " .. start .. " instead of " .. record_frame end
    return "returned item"
  end
  if on_track(timeline, track, record_frame) == nil then
    return nil, "Resolve returned an empty item and nothing starts at frame " .. record_frame .. " on audio track " .. track
  end
  return "track lookup"
end

--- Import the stems and place each on a new stereo audio track; fills report.placed/skipped/tracks.
function M.place_stems(project, timeline, stems, fps, report)
  if #stems == 0 then return end
  local media_pool = call(project, "GetMediaPool")
  if not media_pool then error({script = "FoleySpace: cannot reach the media pool."}) end
  local infos, paths = {}, {}
  for i, s in ipairs(stems) do infos[i], paths[i] = {FilePath = s.path}, s.path end
  local imported = call(media_pool, "ImportMedia", infos)
  if type(imported) ~= "table" or #imported == 0 then imported = call(media_pool, "ImportMedia", paths) end
  if type(imported) ~= "table" or #imported == 0 then
    for _, s in ipairs(stems) do report.skipped[#report.skipped + 1] = {s.clip.name, "Resolve did not import " .. s.path} end
    return
  end
  local by_path = {}
  for _, media in ipairs(imported) do
    local path = clip_property(media, clip_properties(media), "File Path")
    if type(path) == "string" and path ~= "" then by_path[norm(path)] = media end
  end
  if next(by_path) == nil and #imported == #stems then
    for i, s in ipairs(stems) do by_path[norm(s.path)] = imported[i] end
  end
  local track = add_stereo_track(timeline)
  report.tracks[#report.tracks + 1] = track
  for _, stem in ipairs(stems) do
    local clip, media = stem.clip, by_path[norm(stem.path)]
    if not media then
      report.skipped[#report.skipped + 1] = {clip.name, "Resolve did not import " .. stem.path}
    else
      local frames = math.min(clip.frames, math.max(1, math.floor(stem.duration_s * fps + 0.5)))
      local available = toint(clip_property(media, clip_properties(media), "Frames"))
      if available and available > 0 then frames = math.min(frames, available) end
      local how, why = append(media_pool, timeline, media, track, clip.record_frame, frames)
      local used = track
      if not how then
        used = add_stereo_track(timeline)
        report.tracks[#report.tracks + 1] = used
        log("FoleySpace: " .. clip.name .. ": " .. why .. "; retrying on new audio track " .. used)
        how, why = append(media_pool, timeline, media, used, clip.record_frame, frames)
      end
      if how then
        log(string.format("FoleySpace: placed %s on audio track %d at frame %d (%d frames)", basename(stem.path),
                          used, clip.record_frame, frames))
        report.placed[#report.placed + 1] = {name = clip.name, path = stem.path, track = used,
                                             record_frame = clip.record_frame, frames = frames, confirmed_by = how,
                                             preview = stem.preview}
      else
        report.skipped[#report.skipped + 1] = {clip.name, why}
      end
    end
  end
end

-- ------------------------------------------------------------------ the whole run
local function items_to_process(timeline, track)
  if track == nil then
    local it = call(timeline, "GetCurrentVideoItem")
    if it == nil then
      error({script = "FoleySpace: no video clip under the playhead; move it over a clip or set "
                      .. "FOLEYSPACE_RESOLVE_TRACK to a video track number."})
    end
    return {it}
  end
  local count = toint(call(timeline, "GetTrackCount", "video")) or 0
  if track < 1 or track > count then
    error({script = "FoleySpace: video track " .. track .. " does not exist (the timeline has " .. count .. ")."})
  end
  local items = call(timeline, "GetItemListInTrack", "video", track)
  if type(items) ~= "table" or #items == 0 then error({script = "FoleySpace: video track " .. track .. " has no clips."}) end
  return items
end

local function output_dir(project, settings)
  if settings.output_dir then return settings.output_dir end
  local home = os.getenv("HOME") or os.getenv("USERPROFILE") or "."
  local root = M.OUTPUT_ROOT:gsub("^~", (home:gsub("%%", "%%%%")))
  local name = call(project, "GetName")
  return root .. "/" .. safe_name(type(name) == "string" and name or "", "Untitled Project")
end

local function make_dir(dir)
  if windows then
    M.run("mkdir", {dir})
  else
    M.run("mkdir", {"-p", dir})
  end
  local probe = io.open(dir .. "/.foleyspace-probe", "w")
  if not probe then error({script = "FoleySpace: cannot create the stem folder " .. dir}) end
  probe:close()
  os.remove(dir .. "/.foleyspace-probe")
end

local function stem_path(dir, clip, taken)
  local base = safe_name((basename(clip.video):gsub("%.[^.]*$", "")), "clip") .. "_" .. clip.record_frame .. "_binaural"
  local path, k = dir .. "/" .. base .. ".wav", 1
  while file_exists(path) or taken[path] do
    k = k + 1
    path = dir .. "/" .. base .. "_" .. k .. ".wav"
  end
  taken[path] = true
  return path
end

local function current_timeline(resolve)
  local project = call(call(resolve, "GetProjectManager"), "GetCurrentProject")
  if not project then error({script = "FoleySpace: no project is open in DaVinci Resolve."}) end
  local timeline = call(project, "GetCurrentTimeline")
  if not timeline then
    error({script = "FoleySpace: the project has no current timeline; open one on the Edit page."})
  end
  return project, timeline
end

local function summarize(report)
  local tracks = {}
  for i, t in ipairs(report.tracks) do tracks[i] = "A" .. t end
  if #report.placed > 0 then
    log("FoleySpace: placed " .. #report.placed .. " stem(s) on audio track(s) " .. table.concat(tracks, ", ") .. ".")
    for _, p in ipairs(report.placed) do
      if p.preview then log("FoleySpace: " .. p.name .. ": Preview: " .. p.preview) end
    end
  else
    log("FoleySpace: nothing was placed on the timeline.")
  end
  if #report.skipped > 0 then
    log("FoleySpace: skipped " .. #report.skipped .. ":")
    for _, s in ipairs(report.skipped) do log("  - " .. s[1] .. ": " .. s[2]) end
  end
end

--- Gather the clips of the current item or track, as the Python script does.
local function gather(timeline, fps, settings, report)
  local clips = {}
  for _, it in ipairs(items_to_process(timeline, settings.track)) do
    local ok, result = pcall(M.clip_from_item, it, fps, settings)
    if ok then
      for _, note in ipairs(result.notes) do log("FoleySpace: " .. result.name .. ": " .. note) end
      clips[#clips + 1] = result
    elseif type(result) == "table" and result.skip then
      report.skipped[#report.skipped + 1] = {M.item_name(it), result.skip}
    else
      error(result, 0)
    end
  end
  return clips
end

--- Spatialize the current item or a track's clips and place the stems; returns the report.
function M.spatialize_timeline(resolve, settings)
  local report = {placed = {}, skipped = {}, tracks = {}, error = nil}
  local ok, err = pcall(function()
    local project, timeline = current_timeline(resolve)
    local fps = M.timeline_fps(project, timeline)
    local clips = gather(timeline, fps, settings, report)
    if #clips == 0 then error({script = "FoleySpace: no clip to spatialize."}) end
    local names = {}
    for i, clip in ipairs(clips) do names[i] = clip.name end
    M.check_labels(settings, names)  -- classic: a label naming people or a face
    if settings.label == nil and (settings.vocab or "") ~= "" then
      log("FoleySpace: FOLEYSPACE_RESOLVE_VOCAB is not used: each clip's name is sent as its label; "
          .. "set FOLEYSPACE_RESOLVE_LABEL to - to let YOLO-World choose from the vocabulary")
    end
    local dir = output_dir(project, settings)
    make_dir(dir)
    log("FoleySpace: " .. #clips .. " clip(s) -> " .. dir)
    local warps
    local stems, taken = {}, {}
    for n, clip in ipairs(clips) do
      local prefix = string.format("FoleySpace: [%d/%d] %s:", n, #clips, clip.name)
      if clip.speed ~= 1.0 and warps == nil then warps = M.cli_has_speed(settings.cli) end
      if clip.speed ~= 1.0 and not warps then
        report.skipped[#report.skipped + 1] = {clip.name, "the clip is retimed and this foleyspace command has no "
                                               .. "--speed; update FoleySpace"}
      else
        log(prefix .. " rendering")
        local stem, why, fatal = M.render(settings.cli, clip, stem_path(dir, clip, taken), settings)
        if fatal then error({script = fatal}) end
        if stem then
          stem.clip = clip
          stems[#stems + 1] = stem
          log(prefix .. " done -> " .. stem.path)
          if stem.preview then
            log(prefix .. " preview -> " .. stem.preview)
          elseif settings.preview then
            log(prefix .. " no preview was written")
          end
        else
          report.skipped[#report.skipped + 1] = {clip.name, why}
        end
      end
    end
    M.place_stems(project, timeline, stems, fps, report)
  end)
  if not ok then
    if type(err) == "table" and err.script then
      report.error = err.script
      log(report.error)
    else
      report.error = "FoleySpace: unexpected error: " .. tostring(err)
      log(report.error)
    end
  end
  summarize(report)
  return report
end

--- Entry point when Resolve runs the script; true when at least one stem was placed.
function M.main(resolve_app)
  local app = resolve_app or rawget(_G, "resolve")
  if app == nil and type(rawget(_G, "Resolve")) == "function" then app = Resolve() end
  if app == nil and rawget(_G, "bmd") ~= nil then app = call(bmd, "scriptapp", "Resolve") end
  if app == nil then
    log("FoleySpace: DaVinci Resolve is not reachable: run this from Workspace > Scripts inside Resolve.")
    return false
  end
  local ok, settings = pcall(M.settings)
  if not ok then
    log(type(settings) == "table" and settings.script or tostring(settings))
    return false
  end
  local report = M.spatialize_timeline(app, settings)
  return #report.placed > 0 and report.error == nil
end

if rawget(_G, "FOLEYSPACE_LIBRARY") then
  return M
end
M.main()
