-- A realistic request mix for wrk against the eLibrary API (see bench/README.md).
--
--   40%  GET  /api/books?page=N&per_page=20
--   20%  GET  /api/books?q=<word>
--   25%  GET  /api/books/<id>
--   15%  POST /api/loans {"book_id": id}, and after each 201 a POST /api/loans/<id>/return
--
-- The run's data (tokens, member ids, book id range, search words) comes from a Lua file
-- named by the BENCH_MIX_CONFIG environment variable; app_throughput.py writes it. State
-- is per wrk thread: responses do not say which request they answer, so a 201 (only a
-- borrow answers 201 in this mix) is parsed for the loan id and member id, and the return
-- is queued and sent as that thread's next request with the borrowing member's token.
--
-- done() prints one line "BENCH_RESULT {json}" with wrk's totals, latency percentiles
-- (microseconds) and the counters kept here. 409 answers (no copy free, loan limit) are
-- expected; only 5xx answers and socket errors count as errors.

local config_path = os.getenv("BENCH_MIX_CONFIG")
assert(config_path, "set BENCH_MIX_CONFIG to the Lua file app_throughput.py writes")
local cfg = dofile(config_path)

local token_of = {}
for i, member_id in ipairs(cfg.member_ids) do
  token_of[member_id] = cfg.tokens[i]
end

-- Counters, as globals so that done() can read them through thread:get().
n_list, n_search, n_get, n_borrow, n_return = 0, 0, 0, 0, 0
n_2xx, n_404, n_409, n_4xx_other, n_5xx, n_other = 0, 0, 0, 0, 0, 0
n_borrowed, n_returned = 0, 0

local threads = {}
local queue, head, tail = {}, 1, 0 -- loans waiting to be returned, oldest first
local next_member = 0

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(cfg.seed + 7919 * (thread_index or 0))
  next_member = (thread_index or 0) * 7
end

local function bearer(token)
  return { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
  if head <= tail then
    local loan = queue[head]
    queue[head] = nil
    head = head + 1
    n_return = n_return + 1
    return wrk.format("POST", "/api/loans/" .. loan.id .. "/return", bearer(loan.token), "")
  end
  local r = math.random()
  if r < 0.40 then
    n_list = n_list + 1
    return wrk.format("GET", "/api/books?page=" .. math.random(1, cfg.pages) .. "&per_page=20")
  elseif r < 0.60 then
    n_search = n_search + 1
    return wrk.format("GET", "/api/books?q=" .. cfg.words[math.random(1, #cfg.words)])
  elseif r < 0.85 then
    n_get = n_get + 1
    return wrk.format("GET", "/api/books/" .. math.random(1, cfg.max_book_id))
  end
  n_borrow = n_borrow + 1
  next_member = next_member % #cfg.tokens + 1
  local body = '{"book_id": ' .. math.random(1, cfg.max_book_id) .. "}"
  return wrk.format("POST", "/api/loans", bearer(cfg.tokens[next_member]), body)
end

function response(status, headers, body)
  if status == 201 then
    n_2xx = n_2xx + 1
    n_borrowed = n_borrowed + 1
    local loan_id = body and body:match('"id":%s*(%d+)')
    local member_id = body and body:match('"member_id":%s*(%d+)')
    local token = member_id and token_of[tonumber(member_id)]
    if loan_id and token then
      tail = tail + 1
      queue[tail] = { id = loan_id, token = token }
    end
  elseif status >= 200 and status < 300 then
    n_2xx = n_2xx + 1
    if body and body:find('"status":%s*"returned"') then
      n_returned = n_returned + 1
    end
  elseif status == 404 then
    n_404 = n_404 + 1
  elseif status == 409 then
    n_409 = n_409 + 1
  elseif status >= 400 and status < 500 then
    n_4xx_other = n_4xx_other + 1
  elseif status >= 500 then
    n_5xx = n_5xx + 1
  else
    n_other = n_other + 1
  end
end

local COUNTERS = {
  "n_list", "n_search", "n_get", "n_borrow", "n_return",
  "n_2xx", "n_404", "n_409", "n_4xx_other", "n_5xx", "n_other", "n_borrowed", "n_returned",
}

function done(summary, latency, requests)
  local parts = {
    string.format('"duration_us": %d', summary.duration),
    string.format('"requests": %d', summary.requests),
    string.format('"bytes": %d', summary.bytes),
    string.format('"err_connect": %d', summary.errors.connect),
    string.format('"err_read": %d', summary.errors.read),
    string.format('"err_write": %d', summary.errors.write),
    string.format('"err_timeout": %d', summary.errors.timeout),
    string.format('"err_status": %d', summary.errors.status),
    string.format('"lat_mean_us": %.1f', latency.mean),
    string.format('"lat_max_us": %d', latency.max),
  }
  for _, p in ipairs({ 50, 90, 95, 99 }) do
    table.insert(parts, string.format('"lat_p%d_us": %d', p, latency:percentile(p)))
  end
  for _, name in ipairs(COUNTERS) do
    local total = 0
    for _, thread in ipairs(threads) do
      total = total + (thread:get(name) or 0)
    end
    table.insert(parts, string.format('"%s": %d', name, total))
  end
  io.write("BENCH_RESULT {" .. table.concat(parts, ", ") .. "}\n")
end
