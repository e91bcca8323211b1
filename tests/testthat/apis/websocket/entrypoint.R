# A WebSocket echo server on httpuv itself (plumber has no WebSockets), started the way a
# Faucet-style entrypoint.R starts its server: on the port valve gives it.
#   text "pid"          answers "pid <the worker's pid>"
#   text "request"      answers the names of the handshake's request variables and headers
#   text "close <code>" closes the connection with that code
#   anything else       is sent back as it came (text as text, binary as binary)
# Over HTTP, GET /pid answers the pid as JSON; every other path is a 404.
pid <- as.character(Sys.getpid())
httpuv::runServer("127.0.0.1", as.integer(Sys.getenv("VALVE_PORT")), list(
  call = function(req) {
    if (identical(req$PATH_INFO, "/pid")) {
      return(list(status = 200L, headers = list("Content-Type" = "application/json"),
                  body = paste0('{"pid":', pid, "}")))
    }
    list(status = 404L, headers = list("Content-Type" = "text/plain"), body = "not found\n")
  },
  onWSOpen = function(ws) {
    ws$onMessage(function(binary, message) {
      if (!binary && identical(message, "pid")) return(ws$send(paste("pid", pid)))
      if (!binary && identical(message, "request")) {
        return(ws$send(paste(c(ls(ws$request), names(ws$request$HEADERS)), collapse = " ")))
      }
      if (!binary && startsWith(message, "close ")) {
        return(ws$close(as.integer(sub("close ", "", message, fixed = TRUE)), "asked to close"))
      }
      ws$send(message)
    })
  }
))
