#* @apiTitle valve example API

#* Say hello
#* @param name Who to greet
#* @get /hello
function(name = "world") {
  list(message = paste0("Hello, ", name, "!"), pid = Sys.getpid())
}

#* Sleep, then answer: shows requests spread over workers
#* @param ms Milliseconds to sleep
#* @get /sleep
function(ms = 1000) {
  started <- Sys.time()
  Sys.sleep(as.numeric(ms) / 1000)
  list(pid = Sys.getpid(), started = format(started, "%H:%M:%OS3"), finished = format(Sys.time(), "%H:%M:%OS3"))
}

#* Echo the request body size
#* @post /echo
function(req) {
  list(bytes = length(req$bodyRaw), pid = Sys.getpid())
}
