-- cluster/bench/requests.lua: the requests `cluster/bench.sh etcd` makes wrk send, so that the
-- toy store and etcd are driven by one load generator doing the same work per request.
--
-- Usage: wrk [options] -s cluster/bench/requests.lua URL -- KIND [ARGS...]
--
--   order TOY...  the store: POST /orders {"name": TOY, "quantity": 1}, one toy after another
--   read N        the store: GET /orders/N
--   put           etcd: POST /v3/kv/put (the JSON gateway) of a key no request used before,
--                 with an order as its value: one new key per request, like one order
--   range KEY     etcd: POST /v3/kv/range of KEY (base64); linearizable, etcd's default
--
-- Writes build their request anew each time (a new key, the next toy); reads send one fixed
-- request. No `response` function: wrk then only counts status codes and latencies.

local kind, request_text
local toys, next_toy = {}, 0
local sent = 0
local thread_tag = 0

-- setup runs once per wrk thread, in wrk's main Lua state: number the threads so each one
-- writes keys of its own.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

-- The base64 alphabet; any string of whole 4-character groups from it is valid base64, so a
-- key can be written in base64 directly, digit by digit, without encoding bytes first.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- n written with `width` base-64 digits, most significant first.
local function b64_digits(n, width)
  local out = {}
  for i = width, 1, -1 do
    local d = n % 64
    out[i] = alphabet:sub(d + 1, d + 1)
    n = math.floor(n / 64)
  end
  return table.concat(out)
end

local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

-- An order's JSON, {"name":"Tux","quantity":1}, in base64: the value of every put.
local order_value = "eyJuYW1lIjoiVHV4IiwicXVhbnRpdHkiOjF9"
-- "order-" in base64; a put's key is "order-", 3 bytes naming the thread, 6 bytes counting.
local key_prefix = "b3JkZXIt"

function init(args)
  kind = args[1]
  thread_tag = tag or 1
  if kind == "order" then
    for i = 2, #args do toys[#toys + 1] = args[i] end
    if #toys == 0 then error("order needs at least one toy name") end
    next_toy = thread_tag % #toys
  elseif kind == "read" then
    request_text = wrk.format("GET", "/orders/" .. (args[2] or "0"))
  elseif kind == "put" then
    key_prefix = key_prefix .. b64_digits(thread_tag, 4)
  elseif kind == "range" then
    if not args[2] then error("range needs a base64 key") end
    request_text = wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" },
      '{"key":"' .. args[2] .. '"}')
  else
    error("unknown kind '" .. tostring(kind) .. "' (order, read, put or range)")
  end
end

function request()
  if kind == "order" then
    next_toy = next_toy % #toys + 1
    return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json" },
      '{"name":' .. json_string(toys[next_toy]) .. ',"quantity":1}')
  elseif kind == "put" then
    sent = sent + 1
    return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" },
      '{"key":"' .. key_prefix .. b64_digits(sent, 8) .. '","value":"' .. order_value .. '"}')
  end
  return request_text
end
