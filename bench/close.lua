-- wrk -s bench/close.lua: every request says "Connection: close", so each
-- one opens a new connection (wrk's -H needs "Name: value" with a space,
-- which the scripts' word-split WARGS cannot carry).
wrk.headers["Connection"] = "close"
