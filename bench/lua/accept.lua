-- POST /api/tasks: one WHITE_BACKGROUND task with a ~100 KB reference image, for a random owner.
-- BENCH_BODY names the multipart body file, BENCH_BOUNDARY its boundary.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local lines = common.load(os.getenv("BENCH_DATA"))

local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = file:read("*a")
file:close()
local content_type = "multipart/form-data; boundary=" .. os.getenv("BENCH_BOUNDARY")

math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)

request = function()
  local line = lines[math.random(#lines)]
  return wrk.format("POST", "/api/tasks", { ["Cookie"] = line.cookie, ["Content-Type"] = content_type }, body)
end

done = common.done
