-- api.lua - the wrk script of every HTTP workload of `tools/carebot bench`.
--
-- Environment:
--   BENCH_MODE     get      GET the URL's path as it is (no token unless a
--                           targets file is given: then its first token)
--                  messages_get   GET /api/chats/{id}/messages?limit=50 as the line's token
--                  messages_post  POST /api/chats/{id}/messages {"content"} as the line's token
--                  chats_post     POST /api/chats/ {"department_id","subject","message"}
--                  publish        POST /pub?id=bench/{id} a message-sized JSON event
--   BENCH_TARGETS  a file of lines "TOKEN ID" (ID: a chat id, or for chats_post a
--                  department id); each wrk thread walks all lines from its
--                  own offset, so every connection spreads over many chats.
--
-- done() prints one line "BENCH_JSON {...}" with the counts and latency
-- percentiles (microseconds), which the bench driver parses.

local mode = os.getenv("BENCH_MODE") or "get"
local targets_file = os.getenv("BENCH_TARGETS")
local targets = {}
local pos = 1
local seq = 0
local threads = {}
local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("tindex", counter)
	table.insert(threads, thread)
end

function init(args)
	if targets_file and targets_file ~= "" then
		for line in io.lines(targets_file) do
			local token, id = line:match("^(%S+)%s+(%d+)")
			if token then
				table.insert(targets, {token = token, id = id})
			end
		end
	end
	if #targets > 0 then
		pos = ((tindex or 1) * 7919) % #targets + 1
	end
	created, assigned, waiting = 0, 0, 0
end

local function next_target()
	local t = targets[pos]
	pos = pos % #targets + 1
	return t
end

local function json_headers(token)
	local h = {["Content-Type"] = "application/json"}
	if token then
		h["Authorization"] = "Bearer " .. token
	end
	return h
end

function request()
	seq = seq + 1
	if mode == "get" then
		if #targets > 0 then
			return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. targets[1].token})
		end
		return wrk.format("GET")
	end
	local t = next_target()
	if mode == "messages_get" then
		return wrk.format("GET", "/api/chats/" .. t.id .. "/messages?limit=50",
			{["Authorization"] = "Bearer " .. t.token})
	elseif mode == "messages_post" then
		return wrk.format("POST", "/api/chats/" .. t.id .. "/messages", json_headers(t.token),
			'{"content":"bench message ' .. (tindex or 1) .. "-" .. seq .. ': is my order on its way?"}')
	elseif mode == "chats_post" then
		return wrk.format("POST", "/api/chats/", json_headers(t.token),
			'{"department_id":' .. t.id .. ',"subject":"bench chat","message":"Hello, I need help with my order ' ..
			(tindex or 1) .. "-" .. seq .. '."}')
	elseif mode == "publish" then
		return wrk.format("POST", "/pub?id=bench/" .. t.id, {["Content-Type"] = "application/json"},
			'{"type":"message.created","chat_id":' .. t.id .. ',"at":"2026-11-24T09:30:00.123Z",' ..
			'"data":{"id":' .. seq .. ',"chat_id":' .. t.id .. ',"sender_id":42,"sender_role":"customer",' ..
			'"content":"bench message: is my order on its way?","created_at":"2026-11-24T09:30:00.123Z"}}')
	end
	error("unknown BENCH_MODE " .. mode)
end

if mode == "chats_post" then
	-- Whether each created chat found an agent at once (the point of workload c).
	function response(status, headers, body)
		if status == 201 then
			created = created + 1
			if body:find('"status":"active"', 1, true) then
				assigned = assigned + 1
			elseif body:find('"status":"waiting"', 1, true) then
				waiting = waiting + 1
			end
		end
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	local extra = ""
	if mode == "chats_post" then
		local c, a, w = 0, 0, 0
		for _, t in ipairs(threads) do
			c = c + (t:get("created") or 0)
			a = a + (t:get("assigned") or 0)
			w = w + (t:get("waiting") or 0)
		end
		extra = string.format(',"created":%d,"assigned":%d,"waiting":%d', c, a, w)
	end
	io.write(string.format(
		'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
		'"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
		'"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f%s}\n',
		summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
		e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency.max, latency.mean, extra))
end
