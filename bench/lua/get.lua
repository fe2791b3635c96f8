-- GET a random line's path with that line's owner cookie (the ceiling, poll, recovery and history routes).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local lines = common.load(os.getenv("BENCH_DATA"))

math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)

request = function()
  local line = lines[math.random(#lines)]
  return wrk.format("GET", line.path, { ["Cookie"] = line.cookie })
end

done = common.done
