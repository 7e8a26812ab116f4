-- Workload wrapper: the shared workload named by $WORKLOAD (run from ../shared/bench/wrk), with every request made
-- unique: a new session cookie, a new User-Agent build number and, per workload, new query values or new JSON
-- values. It measures Palisade when no value repeats across requests, so nothing is answered from the engine's
-- per-thread memory of recent prefilter scans (see bench/unique.sh).
dofile(os.getenv("WORKLOAD"))
local base_path, base_body = wrk.path, wrk.body
local n = 0
request = function()
  n = n + 1
  local id = string.format("%06x%d", math.random(0, 0xffffff), n)
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Cookie"] = "sid=" .. id .. "; theme=dark; consent=analytics"
  h["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0."
      .. n .. " Safari/537.36"
  local path, body = base_path, base_body
  if string.find(path, "?", 1, true) then
    -- A new value for every query parameter.
    path = string.gsub(path, "=([^&]*)", function(v) return "=" .. v .. id end)
  end
  if body then
    -- A new value for every JSON string.
    body = string.gsub(body, '":"([^"]*)"', function(v) return '":"' .. v .. id .. '"' end)
  end
  local r = wrk.format(wrk.method, path, h, body)
  if n <= 2 and os.getenv("UNIQUE_DEBUG") then io.write(r, "\n----\n") end
  return r
end
