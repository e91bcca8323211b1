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

# Requests this process is handling at once, as the API itself counts them. /hold answers from
# a promise, so while it holds a request the worker is free to take another one: if valve ever
# sent one worker two requests at once, this process would see both and say 2.
in_flight <- 0L
max_in_flight <- 0L

#* Holds the request for `ms` milliseconds without blocking the worker, or until this process
#* has held `until` requests at once; reports the most it ever held at once.
#* @get /hold
function(ms = 200, until = Inf) {
  in_flight <<- in_flight + 1L
  max_in_flight <<- max(max_in_flight, in_flight)
  deadline <- Sys.time() + as.numeric(ms) / 1000
  promises::promise(function(resolve, reject) {
    check <- function() {
      if (max_in_flight >= as.numeric(until) || Sys.time() >= deadline) {
        in_flight <<- in_flight - 1L
        resolve(list(pid = Sys.getpid(), max_in_flight = max_in_flight))
      } else {
        later::later(check, 0.01)
      }
    }
    check()
  })
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

# Memory this process keeps, so that tests can push a worker above max_worker_memory.
kept <- list()

#* Allocates `mb` MiB (touched, so resident) and keeps it.
#* @get /grow
function(mb = 10) {
  kept[[length(kept) + 1]] <<- stats::runif(as.numeric(mb) * 131072)
  list(pid = Sys.getpid())
}

#* The X-Request-Id this worker received.
#* @get /request-id
function(req) list(id = req$HTTP_X_REQUEST_ID)
