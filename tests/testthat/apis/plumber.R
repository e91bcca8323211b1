# The API every end-to-end test serves.

#* @get /pid
function() list(pid = Sys.getpid())

#* Sleeps, reporting when it ran, to show parallelism and one-request-per-worker.
#* @get /sleep
function(ms = 1000) {
  started <- as.numeric(Sys.time())
  Sys.sleep(as.numeric(ms) / 1000)
  list(pid = Sys.getpid(), started = started, finished = as.numeric(Sys.time()))
}

#* @post /echo
function(req) list(bytes = length(req$bodyRaw), pid = Sys.getpid())

#* Writes a line to stderr, which valve should tag with the worker's name.
#* @get /say
function(text = "hello") {
  message("said: ", text)
  list(pid = Sys.getpid())
}

#* What API code can see of the request and the process.
#* @get /introspect
function(req) {
  list(
    request = sort(ls(req, all.names = TRUE)),
    headers = sort(names(req$HEADERS)),
    env = sort(names(Sys.getenv()))
  )
}

#* @get /forwarded
function(req) list(xff = req$HTTP_X_FORWARDED_FOR, proto = req$HTTP_X_FORWARDED_PROTO, host = req$HTTP_X_FORWARDED_HOST)
