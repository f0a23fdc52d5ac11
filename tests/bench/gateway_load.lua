-- wrk script for tests/bench/gateway_load.rs: replays a corpus of signed, encrypted callbacks
-- (one "PATH<TAB>BODY" per line). Each wrk thread takes its own share of the lines, so no
-- callback is sent twice while its share lasts.
-- Arguments (after `--`): corpus file, wrk thread count, delay in ms per request on every
-- connection (0: unpaced; more: a fixed offered load), and how many of each thread's lines to
-- skip (so a second run against the same gateway sends callbacks the first did not, instead of
-- replays it answers from the dedupe hint). At the end it prints how far the furthest thread got
-- into its lines (`corpus position: N`), where the next run should start.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local corpus, nthreads = args[1], tonumber(args[2])
  local delay_ms = tonumber(args[3] or "0")
  skip = tonumber(args[4] or "0")
  sent = 0
  reqs = {}
  local n = 0
  for line in io.lines(corpus) do
    if n % nthreads == tid then
      local path, body = line:match("^(.-)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, { ["Content-Type"] = "text/xml" }, body)
    end
    n = n + 1
  end
  -- wrk takes its paced path (a timer and a call into Lua per request) whenever the script
  -- defines `delay`, even one answering 0; so it is defined only when pacing is asked for.
  if delay_ms > 0 then
    function delay()
      return delay_ms
    end
  end
end

function request()
  local i = (skip + sent) % #reqs + 1
  sent = sent + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local furthest = 0
  for _, t in ipairs(threads) do
    furthest = math.max(furthest, t:get("skip") + t:get("sent"))
  end
  io.write(string.format("corpus position: %d\n", furthest))
end
