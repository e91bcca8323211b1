# The API every benchmark target serves.

#* Small JSON
#* @get /fast
function() list(ok = TRUE)

#* @get /sleep
function(ms = 100) {
  Sys.sleep(as.numeric(ms) / 1000)
  list(slept = as.numeric(ms))
}

#* About 20 ms of R CPU
#* @get /cpu
function() {
  deadline <- proc.time()[["elapsed"]] + 0.02
  x <- 0
  while (proc.time()[["elapsed"]] < deadline) x <- x + sum(sqrt(seq_len(1000)))
  list(x = x)
}

#* @post /echo
function(req) list(bytes = length(req$bodyRaw))

#* @serializer contentType list(type = "application/octet-stream")
#* @get /bytes
function(n = 1000000) as.raw(rep_len(0:255, as.integer(n)))
