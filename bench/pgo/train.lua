-- Training traffic for the profile-guided build (bench/pgo.sh): a mix of requests unlike the benchmark's own
-- (other browsers, paths, parameters, JSON shapes, forms) and a few attacks, cycled in order. Host is a name, as
-- in real traffic (a numeric Host fires CRS 920350 on every request).
local reqs = {}
local function add(method, path, headers, body)
  local h = { ["Host"] = "app.example.org" }
  for k, v in pairs(headers or {}) do h[k] = v end
  reqs[#reqs + 1] = wrk.format(method, path, h, body)
end

local firefox = {
  ["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  ["Accept-Language"] = "fr-FR,fr;q=0.8,en;q=0.5",
  ["Accept-Encoding"] = "gzip, deflate, br, zstd",
  ["Cookie"] = "session=9b2c71f0e4a8; lang=fr",
  ["Referer"] = "https://app.example.org/catalog",
}
local safari = {
  ["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  ["Accept"] = "*/*",
  ["Accept-Language"] = "ja-JP",
}
local api = {
  ["User-Agent"] = "python-requests/2.32.3",
  ["Accept"] = "application/json",
  ["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
  ["Content-Type"] = "application/json",
}
local form = {
  ["User-Agent"] = firefox["User-Agent"],
  ["Accept"] = firefox["Accept"],
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Origin"] = "https://app.example.org",
}

add("GET", "/", firefox)
add("GET", "/catalog/shirts/blue-oxford-42.html", firefox)
add("GET", "/static/js/app.3f9c1.js", safari)
add("GET", "/img/banner.webp", safari)
add("GET", "/catalog?page=3&sort=newest&filter=cotton&min=10&max=80", firefox)
add("GET", "/api/v2/items/1187?fields=name,price,stock&expand=reviews", api)
add("POST", "/api/v2/cart", api,
  '{"items":[{"id":1187,"qty":2},{"id":204,"qty":1,"options":{"size":"M","colour":"navy"}}],'
  .. '"coupon":null,"note":"Leave at the door, thanks!","gift":true,"total":129.5}')
add("PUT", "/api/v2/profile", api,
  '{"name":"Kenji Sato","email":"k.sato@example.jp","phones":["+81 3 1234 5678"],'
  .. '"address":{"line1":"1-2-3 Chiyoda","city":"Tokyo","zip":"100-0001"},"newsletter":false}')
-- Larger JSON bodies (an API's batch calls, 2-3 KiB): the body parser and the per-argument work weigh in the
-- profile as they do in API traffic.
local events = {}
for i = 1, 18 do
  events[#events + 1] = string.format(
    '{"ts":%d,"type":"%s","page":"/catalog/item-%d","duration_ms":%d,"tags":["web","v%d"],"ok":%s}',
    1732700000 + i * 37, (i % 3 == 0) and "click" or "view", 1000 + i * 7, 120 + i * 13, i % 4,
    (i % 5 == 0) and "false" or "true")
end
add("POST", "/api/v2/events", api, '{"session":"c0ffee42","device":{"os":"iOS","w":390,"h":844},"events":['
  .. table.concat(events, ",") .. ']}')
local rows = {}
for i = 1, 12 do
  rows[#rows + 1] = string.format(
    '{"sku":"LIN-%03d","title":"Linen shirt, %s","price":{"amount":%d.50,"currency":"EUR"},"stock":%d,'
    .. '"attributes":{"colour":"%s","fit":"regular"}}',
    i, (i % 2 == 0) and "long sleeve" or "short sleeve", 30 + i, i * 3, (i % 3 == 0) and "sand" or "white")
end
add("PATCH", "/api/v2/catalog/batch", api, '{"replace":false,"items":[' .. table.concat(rows, ",") .. ']}')
add("POST", "/login", form, "username=alice&password=correct+horse+battery&remember=on")
add("POST", "/search", form, "q=linen+trousers&colour=beige&size=L")
add("DELETE", "/api/v2/cart/204", api)
-- Attacks the WAF answers with 403.
add("GET", "/catalog?id=1%27%20OR%20%271%27%3D%271", firefox)
add("POST", "/comment", form, "text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E")
add("GET", "/download?file=..%2F..%2F..%2Fetc%2Fpasswd", safari)

local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
