# The API behind the front-end tests (nginx, ab): small, large and echoed bodies.

#* @get /pid
function() list(pid = Sys.getpid())

#* @post /echo
function(req) list(bytes = length(req$bodyRaw), pid = Sys.getpid())

#* A body large enough that valve streams it to the client instead of sending it in one write.
#* @serializer contentType list(type = "application/octet-stream")
#* @get /bytes
function(n = 1e6) as.raw(seq_len(as.numeric(n)) %% 251)
