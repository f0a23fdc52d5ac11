-- wrk script for tests/bench/gateway_load.rs: replays a corpus of signed, encrypted callbacks
-- (one "PATH<TAB>BODY" per line). Each wrk thread takes its own share of the lines, so no
-- callback is sent twice while the corpus lasts. WRK_DELAY_MS paces every connection (for a
-- fixed offered load).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local corpus, nthreads = args[1], tonumber(args[2])
  delay_ms = tonumber(args[3] or "0")
  reqs = {}
  local n = 0
  for line in io.lines(corpus) do
    if n % nthreads == tid then
      local path, body = line:match("^(.-)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, { ["Content-Type"] = "text/xml" }, body)
    end
    n = n + 1
  end
  idx = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end

function delay()
  return delay_ms
end
