-- Refuses a REST request body that names a field its method's request message lacks.
--
-- Envoy's gRPC-JSON transcoder drops unknown JSON fields without a word, so a typo
-- ("limitPrise") or a field the API does not take ("accountId") would be read as if it
-- were absent. This runs just before the transcoder, on the body the buffer filter has
-- already collected (so it is bounded), and answers 400 naming the first unknown field.
-- ROUTES, prepended by cift/stack/body_fields.py from the OpenAPI document (itself
-- generated from the protos), lists each REST route with a body: its method, a Lua
-- pattern of its path, and the fields its body may hold (JSON and proto names), nested.
-- A node is ANY (anything: scalars, google.protobuf.Struct), {f = fields} for a message,
-- {m = node} for a map's values or {a = node} for a list's items.
--
-- The scan only looks for names. Whatever it cannot read (bad JSON, deeper nesting than
-- any message has) is left to the transcoder, which refuses malformed JSON itself: this
-- filter can add a refusal, never let through what the transcoder would refuse.

local MAX_DEPTH = 32

local ESCAPES = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/",
  b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function skip_space(s, i)
  return s:find("[^ \t\r\n]", i) or (#s + 1)
end

local function utf8_char(code)
  if code < 0x80 then
    return string.char(code)
  elseif code < 0x800 then
    return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
  end
  return string.char(
    0xE0 + math.floor(code / 0x1000),
    0x80 + math.floor(code / 0x40) % 0x40,
    0x80 + code % 0x40
  )
end

-- The decoded string starting at s[i] == '"' and the index after it; nil if malformed.
local function read_string(s, i)
  local parts, j = {}, i + 1
  while true do
    local k = s:find('["\\]', j)
    if k == nil then
      return nil
    end
    parts[#parts + 1] = s:sub(j, k - 1)
    if s:sub(k, k) == '"' then
      return table.concat(parts), k + 1
    end
    local c = s:sub(k + 1, k + 1)
    if c == "u" then
      local hex = s:sub(k + 2, k + 5)
      if not hex:match("^%x%x%x%x$") then
        return nil
      end
      parts[#parts + 1] = utf8_char(tonumber(hex, 16))
      j = k + 6
    elseif ESCAPES[c] then
      parts[#parts + 1] = ESCAPES[c]
      j = k + 2
    else
      return nil
    end
  end
end

-- The index after the string starting at s[i] == '"', without decoding it; nil if unended.
local function skip_string(s, i)
  local j = i + 1
  while true do
    local k = s:find('["\\]', j)
    if k == nil then
      return nil
    elseif s:sub(k, k) == '"' then
      return k + 1
    end
    j = k + 2
  end
end

-- The index after the object or array starting at s[i], whatever it holds: jumps from
-- bracket to bracket and over strings, so a large free-form value costs little.
local function skip_nested(s, i)
  local depth, j = 0, i
  while true do
    local k = s:find('[][{}"]', j)
    if k == nil then
      return nil
    end
    local c = s:sub(k, k)
    if c == '"' then
      j = skip_string(s, k)
      if j == nil then
        return nil
      end
    else
      depth = (c == "{" or c == "[") and depth + 1 or depth - 1
      if depth == 0 then
        return k + 1
      end
      j = k + 1
    end
  end
end

-- After a member or an element: the index after the closing `close` and true, the start
-- of the next item and false after a comma, or nil when neither follows.
local function after_item(s, i, close)
  i = skip_space(s, i)
  local c = s:sub(i, i)
  if c == close then
    return i + 1, true
  elseif c ~= "," then
    return nil
  end
  return skip_space(s, i + 1), false
end

local check_value

-- Each check returns the index after the value, or nil and the unknown field's path
-- (nil and nil: the scan gave up and the transcoder decides).
local function check_object(s, i, node, path, depth)
  i = skip_space(s, i + 1)
  if s:sub(i, i) == "}" then
    return i + 1
  end
  while true do
    if s:sub(i, i) ~= '"' then
      return nil
    end
    local key
    key, i = read_string(s, i)
    if key == nil then
      return nil
    end
    local child = ANY
    if node.f ~= nil then
      child = node.f[key]
      if child == nil then
        return nil, path .. key
      end
    elseif node.m ~= nil then
      child = node.m
    end
    i = skip_space(s, i)
    if s:sub(i, i) ~= ":" then
      return nil
    end
    local unknown
    i, unknown = check_value(s, skip_space(s, i + 1), child, path .. key .. ".", depth + 1)
    if i == nil then
      return nil, unknown
    end
    local closed
    i, closed = after_item(s, i, "}")
    if i == nil or closed then
      return i
    end
  end
end

local function check_array(s, i, node, path, depth)
  i = skip_space(s, i + 1)
  if s:sub(i, i) == "]" then
    return i + 1
  end
  while true do
    local unknown
    i, unknown = check_value(s, i, node.a or ANY, path, depth + 1)
    if i == nil then
      return nil, unknown
    end
    local closed
    i, closed = after_item(s, i, "]")
    if i == nil or closed then
      return i
    end
  end
end

check_value = function(s, i, node, path, depth)
  if depth > MAX_DEPTH then
    return nil
  end
  local c = s:sub(i, i)
  -- Free-form values and lists of scalars hold no field names to check.
  if (node == ANY and c == "{") or (c == "[" and (node.a or ANY) == ANY) then
    return skip_nested(s, i)
  elseif c == "{" then
    return check_object(s, i, node, path, depth)
  elseif c == "[" then
    return check_array(s, i, node, path, depth)
  elseif c == '"' then
    return skip_string(s, i)
  end
  local after = s:find("[,%]}%s]", i) or (#s + 1)
  if after == i then
    return nil
  end
  return after
end

-- The field's name as sent, but only printable ASCII and at most 80 characters.
local function printable(name)
  return (name:sub(1, 80):gsub("[^\32-\126]", "?"))
end

-- `text` (printable ASCII) as the content of a JSON string.
local function json_escaped(text)
  return (text:gsub('[\\"]', "\\%0"))
end

local function body_node(method, path)
  for _, route in ipairs(ROUTES) do
    if route[1] == method and path:match(route[2]) then
      return route[3]
    end
  end
  return nil
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local content_type = headers:get("content-type") or ""
  -- gRPC and gRPC-Web carry protobuf, which the services parse themselves.
  if content_type:sub(1, 16) == "application/grpc" then
    return
  end
  local node = body_node(headers:get(":method"), (headers:get(":path") or ""):match("^[^?]*"))
  if node == nil then
    return
  end
  local body = request_handle:body()
  if body == nil or body:length() == 0 then
    return
  end
  local text = body:getBytes(0, body:length())
  local ok, after, unknown = pcall(check_value, text, skip_space(text, 1), node, "", 0)
  if not ok or after ~= nil or unknown == nil then
    return
  end
  local message = 'unknown field "' .. printable(unknown) .. '": the request has no such field'
  request_handle:respond(
    { [":status"] = "400", ["content-type"] = "application/json" },
    '{"code":3,"message":"' .. json_escaped(message) .. '","details":[]}'
  )
end
