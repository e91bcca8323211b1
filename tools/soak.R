# "valve never hangs" (issue #10): a long soak of the engine under mixed traffic and faults.
#
#   JAVA_HOME=$(inst/bin/find-jdk) R_LIBS=$PWD/.lib Rscript tools/soak.R [minutes]   (default 10)
#
# Not part of `make check`. This R process runs valve (n_min 2, n_max 8, workers reaped after
# 5 s idle, request_timeout 20 s, JVM heap capped at 256 MiB) and, for `minutes`, kills a random
# busy worker every 1-2 s (while at least 3 are ready). The traffic comes from three child Rscripts (this same file,
# `--role=...`), so the engine's threads and fds are the only ones in this process:
#   load   curl, 10 clients then 2 in turn (so the pool grows and is reaped): fast GETs, /sleep,
#          2-8 MB responses (spooled), POST bodies up to 4 MB, HTTP/1.0 with and without
#          keep-alive, and every 30 s a burst that fills the queue, plus clients that give up
#          while their request waits in it;
#   raw    raw sockets: clients that read 1 KB of an 8 MB response and hang up, that hang up
#          right after sending, malformed requests (expecting 400/405/413/414/431/501), raw
#          HTTP/1.0 with and without keep-alive, a body that stops arriving (client_timeout);
#   probe  a watchdog: GET /fast every second, timing out after request_timeout.
# It then stops valve with grace = 5 while requests are in flight.
#
# Fails (exit 1) if: a request or probe took longer than request_timeout or timed out; a status
# was not the expected one (200, or the 4xx/5xx of a malformed request); more requests failed
# (502 or connection closed mid-answer) than workers were killed; any 503/504; the engine's
# threads or open fds grew by more than 20 from start to end (both sampled with the pool back at
# n_min, no client connected); valve_stop() took longer than grace + 5 s, or a client was left
# hanging by it; a worker process of this run outlived valve_stop(). Prints requests by kind and
# outcome, kills, latencies, the thread/fd/RSS series (every minute) and the stop time.

# ---- settings ------------------------------------------------------------------------------
settings <- list(
  n_min = 2, n_max = 8, max_age = 5, check_unused = 1, request_timeout = 20,
  client_timeout = 5, max_body_size = 64 * 1024^2, grace = 5,
  stop_margin = 5, thread_margin = 20, fd_margin = 20
)

now <- function() as.numeric(Sys.time())

# One line per request in a child's output file: kind, status (0 when none), outcome, seconds.
recorder <- function(path) {
  con <- file(path, open = "a")
  function(kind, status, outcome, seconds, started = now()) {
    writeLines(paste(kind, status, outcome, sprintf("%.3f", seconds), sprintf("%.3f", started), sep = "\t"), con)
    flush(con)
  }
}

# curl's error messages, reduced to what they mean here.
curl_outcome <- function(message) {
  if (grepl("timed out|Timeout", message, ignore.case = TRUE)) return("timeout")
  if (grepl("Empty reply|transfer closed|Recv failure|reset|partial|end of file", message, ignore.case = TRUE)) {
    return("closed")
  }
  paste0("error: ", gsub("[\t\n]", " ", message))
}

# ---- child: load (curl multi) ----------------------------------------------------------------
role_load <- function(url, until, out) {
  record <- recorder(out)
  pool <- curl::new_pool(total_con = 100, host_con = 100)
  timeout <- settings$request_timeout + 15
  bodies <- lapply(c(1e3, 200e3, 1.5e6, 4e6), function(n) as.raw(sample.int(256, n, replace = TRUE) - 1))
  active <- 0
  fire <- function(kind, path, check = function(r) TRUE, setup = identity, timeout_ms = timeout * 1000) {
    handle <- setup(curl::new_handle(url = paste0(url, path), timeout_ms = timeout_ms))
    started <- now()
    active <<- active + 1
    curl::multi_add(handle, pool = pool,
      done = function(r) {
        active <<- active - 1
        outcome <- if (r$status_code != 200) "answered" else if (isTRUE(check(r))) "ok" else "bad body"
        record(kind, r$status_code, outcome, now() - started, started)
      },
      fail = function(message) {
        active <<- active - 1
        record(kind, 0, curl_outcome(message), now() - started, started)
      })
  }
  json_number <- function(r, field) as.numeric(sub(sprintf('.*"%s":\\[?([0-9.]+).*', field), "\\1", rawToChar(r$content)))
  random_request <- function() {
    pick <- sample(c("fast", "slow", "large", "post", "http10", "http10_keepalive"), 1,
                   prob = c(40, 20, 12, 14, 7, 7))
    switch(pick,
      fast = fire("fast", "/fast", function(r) grepl("true", rawToChar(r$content))),
      slow = fire("slow", sprintf("/sleep?ms=%d", sample(200:2000, 1))),
      large = {
        mb <- sample(2:8, 1)
        fire("large", sprintf("/big?mb=%d", mb), function(r) length(r$content) == mb * 1e6)
      },
      post = {
        body <- bodies[[sample.int(length(bodies), 1)]]
        fire("post", "/echo", function(r) json_number(r, "bytes") == length(body),
             function(h) {
               curl::handle_setheaders(h, "Content-Type" = "application/octet-stream")
               curl::handle_setopt(h, post = TRUE, postfields = body, postfieldsize = length(body))
             })
      },
      # curl's pool reuses connections that served HTTP/1.1 for these, as real clients do.
      http10 = fire("http10", "/fast", function(r) grepl("true", rawToChar(r$content)),
                    function(h) curl::handle_setopt(h, http_version = 1L)),
      http10_keepalive = fire("http10_keepalive", "/fast", function(r) grepl("true", rawToChar(r$content)),
                              function(h) {
                                curl::handle_setopt(h, http_version = 1L)
                                curl::handle_setheaders(h, Connection = "keep-alive")
                              })
    )
  }
  cycle <- 30
  busy_for <- 18
  began <- now()
  burst_done <- -1
  while (now() < until) {
    t <- now() - began
    round <- floor(t / cycle)
    busy <- (t %% cycle) < busy_for
    # A burst at the start of each busy phase: 8 requests of 3 s on top of the 10 clients fill the queue;
    # 0.3 s later four clients join it and give up after 1.5 s, while still waiting.
    if (busy && round > burst_done && (t %% cycle) > 2) {
      burst_done <- round
      for (i in 1:8) fire("burst", "/sleep?ms=3000")
      curl::multi_run(timeout = 0.3, pool = pool)
      for (i in 1:4) fire("queue_abort", "/sleep?ms=100", timeout_ms = 1500)
    }
    while (active < if (busy) 10 else 2) random_request()
    curl::multi_run(timeout = 0.05, pool = pool)
  }
  curl::multi_run(timeout = timeout + 5, pool = pool)
}

# ---- child: probe (watchdog) ------------------------------------------------------------------
role_probe <- function(url, until, out) {
  record <- recorder(out)
  while (now() < until) {
    started <- now()
    outcome <- tryCatch({
      r <- curl::curl_fetch_memory(paste0(url, "/fast"), handle = curl::new_handle(timeout = settings$request_timeout))
      c(r$status_code, if (r$status_code == 200) "ok" else "answered")
    }, error = function(e) c(0, curl_outcome(conditionMessage(e))))
    took <- now() - started
    record("probe", outcome[1], outcome[2], took, started)
    Sys.sleep(max(0, 1 - took))
  }
}

# ---- child: raw sockets -----------------------------------------------------------------------
`%||%` <- function(a, b) if (is.null(a)) b else a

# Reads from a blocking socket until `done(bytes)` or end of stream or the socket's timeout.
read_until <- function(con, done = function(bytes) FALSE, chunk = 1) {
  got <- raw()
  repeat {
    piece <- tryCatch(readBin(con, "raw", chunk), error = function(e) raw())
    if (length(piece) == 0) return(list(bytes = got, eof = TRUE))
    got <- c(got, piece)
    if (done(got)) return(list(bytes = got, eof = FALSE))
  }
}

head_end <- function(bytes) {
  n <- length(bytes)
  n >= 4 && identical(bytes[(n - 3):n], as.raw(c(13, 10, 13, 10)))
}

status_of <- function(bytes) {
  line <- sub("\r\n.*", "", rawToChar(bytes[seq_len(min(length(bytes), 64))]))
  if (grepl("^HTTP/1\\.[01] [0-9]{3}", line)) as.integer(substr(line, 10, 12)) else 0L
}

header_of <- function(head, name) {
  lines <- strsplit(rawToChar(head), "\r\n", fixed = TRUE)[[1]]
  hit <- grep(paste0("^", name, ":"), lines, ignore.case = TRUE, value = TRUE)
  if (length(hit) == 0) NA_character_ else trimws(sub("^[^:]*:", "", hit[1]))
}

# Reads one response with a Content-Length: list(status, head, body, eof).
read_response <- function(con) {
  head <- read_until(con, head_end)
  if (head$eof) return(list(status = status_of(head$bytes), head = head$bytes, body = raw(), eof = TRUE))
  length <- as.numeric(header_of(head$bytes, "Content-Length"))
  body <- if (is.na(length) || length == 0) raw() else readBin(con, "raw", length)
  list(status = status_of(head$bytes), head = head$bytes, body = body, eof = FALSE)
}

malformed <- local({
  close <- "Connection: close\r\n"
  list(
    list("garbage request line", "GARBAGE\r\n\r\n", 400L),
    list("no HTTP version", "GET /\r\n\r\n", 400L),
    list("unknown method", paste0("FOO / HTTP/1.1\r\nHost: x\r\n", close, "\r\n"), 501L),
    list("TRACE", paste0("TRACE / HTTP/1.1\r\nHost: x\r\n", close, "\r\n"), 405L),
    list("request line too long", paste0("GET /", strrep("a", 20000), " HTTP/1.1\r\nHost: x\r\n\r\n"), 414L),
    list("headers too large", paste0("GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: ", strrep("b", 40000), "\r\n", close, "\r\n"), 431L),
    list("headers far too large", paste0("GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: ", strrep("b", 300000), "\r\n\r\n"), 400L),
    list("negative Content-Length", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n", close, "\r\nhello"), 400L),
    list("non-numeric Content-Length", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n", close, "\r\nhello"), 400L),
    list("huge Content-Length", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n", close, "\r\nhello"), 400L),
    list("two Content-Lengths", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n", close, "\r\nhello"), 400L),
    list("Content-Length over max_body_size", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n", close, "\r\nhello"), 413L),
    list("Content-Length and chunked", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", close, "\r\n5\r\nhello\r\n0\r\n\r\n"), 400L),
    list("invalid chunk size", paste0("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n", close, "\r\nzz\r\nhello\r\n0\r\n\r\n"), 400L),
    list("NUL in a header", paste0("GET /fast HTTP/1.1\r\nHost: x\r\nX-A: a\001b\r\n", close, "\r\n"), 400L),
    list("no Host", paste0("GET /fast HTTP/1.1\r\n", close, "\r\n"), 400L)
  )
})
# "\001" stands in for NUL, which R strings cannot hold; it is swapped for a real 0 byte on the wire.
wire <- function(text) {
  bytes <- charToRaw(text)
  bytes[bytes == as.raw(1)] <- as.raw(0)
  bytes
}

role_raw <- function(url, until, out) {
  record <- recorder(out)
  port <- as.integer(sub(".*:([0-9]+)$", "\\1", url))
  timeout <- settings$request_timeout + 10
  open <- function(timeout) socketConnection("127.0.0.1", port, blocking = TRUE, open = "r+b", timeout = timeout)
  send <- function(con, bytes) tryCatch({ writeBin(bytes, con); flush(con); TRUE }, error = function(e) FALSE)
  actions <- list(
    abort_mid_response = function() {
      con <- open(timeout)
      on.exit(close(con))
      send(con, charToRaw("GET /big?mb=8 HTTP/1.1\r\nHost: soak\r\n\r\n"))
      got <- read_until(con, function(b) length(b) >= 1024, chunk = 256)
      status <- status_of(got$bytes)
      c(status, if (status != 200 && status != 0) "answered" else if (got$eof) "closed" else "hung up after 1 KB")
    },
    hangup_after_send = function() {
      con <- open(timeout)
      send(con, charToRaw("GET /sleep?ms=300 HTTP/1.1\r\nHost: soak\r\n\r\n"))
      Sys.sleep(0.2)
      close(con)
      c(0, "hung up")
    },
    malformed = function() {
      bad <- malformed[[sample.int(length(malformed), 1)]]
      con <- open(timeout)
      on.exit(close(con))
      send(con, wire(bad[[2]]))
      got <- read_until(con, function(b) length(b) >= 12, chunk = 12)
      status <- status_of(got$bytes)
      list(status, if (status == bad[[3]]) "ok" else if (status == 0) "closed" else "unexpected status",
           kind = paste0("bad: ", bad[[1]]))
    },
    http10_raw = function() {
      con <- open(timeout)
      on.exit(close(con))
      send(con, charToRaw("GET /fast HTTP/1.0\r\n\r\n"))
      started <- now()
      got <- read_until(con, chunk = 4096)    # to end of stream: 1.0 without keep-alive closes
      status <- status_of(got$bytes)
      closed <- got$eof && now() - started < timeout - 1   # end of stream, not the socket's timeout
      c(status, if (status == 0) "closed" else if (status != 200) "answered"
                else if (closed && grepl("true", rawToChar(got$bytes))) "ok" else "not closed or bad body")
    },
    http10_raw_keepalive = function() {
      con <- open(timeout)
      on.exit(close(con))
      send(con, charToRaw("GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
      first <- read_response(con)
      if (first$status != 200) return(c(first$status, if (first$status == 0) "closed" else "answered"))
      if (!identical(tolower(header_of(first$head, "Connection")), "keep-alive")) return(c(first$status, "no keep-alive"))
      send(con, charToRaw("GET /big?mb=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
      second <- read_response(con)
      c(second$status, if (second$status == 200 && length(second$body) == 2e6) "ok"
        else if (second$status == 0 || second$status == 200) "closed" else "answered")
    },
    stalled_body = function() {
      con <- open(timeout)
      on.exit(close(con))
      send(con, charToRaw("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100\r\n\r\nonly this"))
      started <- now()
      got <- read_until(con, chunk = 4096)
      status <- status_of(got$bytes)
      in_time <- got$eof && now() - started < settings$client_timeout + 5
      c(status, if (in_time && status %in% c(0L, 400L)) "ok" else "not closed in time")
    }
  )
  weights <- c(abort_mid_response = 20, hangup_after_send = 10, malformed = 45, http10_raw = 10,
               http10_raw_keepalive = 10, stalled_body = 1)
  while (now() < until) {
    name <- sample(names(weights), 1, prob = weights)
    started <- now()
    result <- tryCatch(as.list(actions[[name]]()), error = function(e) list(0, paste("error:", conditionMessage(e))))
    record(result$kind %||% name, result[[1]], result[[2]], now() - started, started)
    Sys.sleep(0.1)
  }
}

# ---- child: the stop test's in-flight requests ------------------------------------------------
# Four that end within the grace period, two that outlast it (but not request_timeout).
role_final <- function(url, until, out) {
  record <- recorder(out)
  pool <- curl::new_pool(total_con = 10, host_con = 10)
  for (ms in c(rep(15000, 2), rep(1000, 4))) local({
    kind <- sprintf("during stop: /sleep?ms=%d", ms)
    started <- now()
    curl::multi_add(curl::new_handle(url = sprintf("%s/sleep?ms=%d", url, ms), timeout = 45), pool = pool,
      done = function(r) record(kind, r$status_code, "answered", now() - started, started),
      fail = function(m) record(kind, 0, curl_outcome(m), now() - started, started))
  })
  curl::multi_run(timeout = 50, pool = pool)
}

# ---- the engine's process --------------------------------------------------------------------
process_stats <- function() {
  status <- readLines("/proc/self/status")
  field <- function(name) as.numeric(gsub("[^0-9]", "", grep(paste0("^", name, ":"), status, value = TRUE)))
  c(threads = field("Threads"), fds = length(list.files("/proc/self/fd")), rss_mib = round(field("VmRSS") / 1024, 1))
}

# A worker of this run still running: alive, not a zombie, running worker.R for this process.
worker_alive <- function(pid) {
  stat <- tryCatch(suppressWarnings(readLines(sprintf("/proc/%d/stat", pid), warn = FALSE)), error = function(e) "")
  if (!nzchar(stat) || grepl("\\) Z ", stat)) return(FALSE)
  read0 <- function(file) {
    bytes <- tryCatch(suppressWarnings(readBin(file.path("/proc", pid, file), "raw", 1e5)), error = function(e) raw())
    strsplit(rawToChar(replace(bytes, bytes == 0, as.raw(10))), "\n", fixed = TRUE)[[1]]
  }
  any(grepl("worker/worker.R", read0("cmdline"), fixed = TRUE)) &&
    paste0("VALVE_PARENT_PID=", Sys.getpid()) %in% read0("environ")
}

all_worker_pids <- function() {
  pids <- suppressWarnings(as.integer(list.files("/proc", pattern = "^[0-9]+$")))
  pids[vapply(pids, worker_alive, logical(1))]
}

main <- function(minutes) {
  options(java.parameters = "-Xmx256m", warn = 1)
  library(valve)
  script <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
  # Kept after the run (R's own temporary directory is not) for a look at the details.
  work <- file.path(tempdir(check = FALSE) |> dirname(), sprintf("valve-soak-%s-%d", format(Sys.time(), "%Y%m%d-%H%M%S"), Sys.getpid()))
  dir.create(work)
  api <- file.path(work, "plumber.R")
  writeLines(c(
    "#* @get /fast", "function() list(ok = TRUE)",
    "#* @get /sleep", "function(ms = 50) { Sys.sleep(as.numeric(ms) / 1000); list(pid = Sys.getpid()) }",
    "#* @serializer octet", "#* @get /big", "function(mb = 4) rep(as.raw(0:255), length.out = as.numeric(mb) * 1e6)",
    "#* @post /echo", "function(req) list(bytes = length(req$bodyRaw))"
  ), api)

  server <- valve_start(api, port = 0, n_min = settings$n_min, n_max = settings$n_max,
                        max_age = settings$max_age, check_unused = settings$check_unused,
                        request_timeout = settings$request_timeout, client_timeout = settings$client_timeout,
                        max_body_size = settings$max_body_size)
  stopped <- FALSE
  children <- list()
  on.exit({
    for (child in children) if (child$is_alive()) child$kill()
    if (!stopped) valve_stop(server, grace = 0)
  })
  log_file <- file.path(work, "valve.log")
  seen_pids <- integer()
  drain_logs <- function() {
    lines <- valve_logs(server)
    cat(lines, file = log_file, sep = "\n", append = TRUE)
    ready <- grep("ready in [0-9]+ ms \\(pid [0-9]+", lines, value = TRUE)
    seen_pids <<- union(seen_pids, as.integer(sub(".*\\(pid ([0-9]+).*", "\\1", ready)))
  }
  note_workers <- function() {
    workers <- valve_workers(server)
    seen_pids <<- union(seen_pids, workers$pid)
    workers
  }
  # Waits (bounded) until the pool has been at n_min idle workers, none starting and nothing
  # queued, for 3 s (a relaunch may be due after a kill's backoff). The engine's status has the
  # starting and queued counts; valve_workers() lists ready workers only.
  quiesce <- function(timeout = 90) {
    deadline <- now() + timeout
    quiet_since <- Inf
    repeat {
      drain_logs()
      workers <- note_workers()
      pool <- valve:::engine_status(server$engine)$pool
      quiet <- nrow(workers) == settings$n_min && !any(workers$busy) && pool$starting == 0 && pool$queued == 0
      quiet_since <- if (quiet) min(quiet_since, now()) else Inf
      if (now() - quiet_since >= 3) return(TRUE)
      if (now() > deadline) return(FALSE)
      Sys.sleep(0.5)
    }
  }

  # Warm-up: grow the pool to n_max and exercise every path once, then let it shrink back.
  cat(sprintf("soak: valve at %s, warming up\n", server$url))
  pool <- curl::new_pool(total_con = 32, host_con = 32)
  for (path in c(rep("/sleep?ms=1500", 12), "/big?mb=4", "/big?mb=8", rep("/fast", 20))) {
    curl::curl_fetch_multi(paste0(server$url, path), pool = pool, handle = curl::new_handle(timeout = 60))
  }
  curl::multi_run(timeout = 60, pool = pool)
  rm(pool)
  gc()
  if (!quiesce()) stop("the pool did not shrink back to n_min after the warm-up")
  gc()
  samples <- data.frame(minute = 0, workers = nrow(note_workers()), t(process_stats()))
  start <- samples[1, ]
  cat(sprintf("soak: start: %d threads, %d fds, RSS %.1f MiB; running %.1f min\n",
              start$threads, start$fds, start$rss_mib, minutes))

  # Traffic.
  began <- now()
  until <- began + minutes * 60
  outputs <- c(load = "load.tsv", raw = "raw.tsv", probe = "probe.tsv")
  for (role in names(outputs)) {
    children[[role]] <- processx::process$new(
      file.path(R.home("bin"), "Rscript"),
      c(script, paste0("--role=", role), server$url, sprintf("%.3f", until), file.path(work, outputs[[role]])),
      stdout = file.path(work, paste0(role, ".out")), stderr = "2>&1")
  }

  kills <- 0
  next_kill <- now() + 1
  next_sample <- now() + 10
  next_print <- began + 60
  while (now() < until) {
    Sys.sleep(0.1)
    # A kill every 1-2 s, only while at least 3 workers are ready: on a loaded machine a worker
    # can take several seconds to start, and killing faster than that starves the pool (every
    # request then waits, which is the test's doing, not valve's).
    if (now() >= next_kill) {
      next_kill <- now() + stats::runif(1, 1, 2)
      workers <- note_workers()
      busy <- workers$pid[workers$busy]
      if (length(busy) > 0 && nrow(workers) >= 3) {
        tools::pskill(busy[sample.int(length(busy), 1)], tools::SIGKILL)
        kills <- kills + 1
      }
      drain_logs()
    }
    if (now() >= next_sample) {
      next_sample <- next_sample + 10
      samples <- rbind(samples, data.frame(minute = round((now() - began) / 60, 2),
                                           workers = nrow(note_workers()), t(process_stats())))
    }
    if (now() >= next_print) {
      next_print <- next_print + 60
      recent <- samples[samples$minute > (now() - began) / 60 - 1, ]
      cat(sprintf("soak: minute %.0f: %d kills; threads %s; fds %s; RSS MiB %s; workers %s\n",
                  (now() - began) / 60, kills, paste(recent$threads, collapse = " "),
                  paste(recent$fds, collapse = " "), paste(recent$rss_mib, collapse = " "),
                  paste(recent$workers, collapse = " ")))
    }
    dead <- vapply(children, function(child) !child$is_alive() && child$get_exit_status() != 0, logical(1))
    if (any(dead)) {
      cat("soak: a client process failed:\n")
      for (role in names(children)[dead]) cat(readLines(file.path(work, paste0(role, ".out"))), sep = "\n")
      break
    }
  }
  # The clients stop on their own at `until`; their last requests end within curl's timeout.
  wait_deadline <- until + settings$request_timeout + 30
  while (any(vapply(children, function(child) child$is_alive(), logical(1))) && now() < wait_deadline) {
    Sys.sleep(0.5)
    drain_logs()
  }
  for (role in names(children)) {
    if (children[[role]]$is_alive()) {
      cat(sprintf("soak: the %s client did not finish; killing pid %d\n", role, children[[role]]$get_pid()))
      children[[role]]$kill()
    }
  }
  children <- list()

  quiesced <- quiesce()
  gc()
  Sys.sleep(1)
  end <- data.frame(minute = round((now() - began) / 60, 2), workers = nrow(note_workers()), t(process_stats()))
  samples <- rbind(samples, end)

  # valve_stop() with requests in flight: four of 1 s, two that outlast the grace period.
  final_out <- file.path(work, "final.tsv")
  final <- processx::process$new(file.path(R.home("bin"), "Rscript"),
    c(script, "--role=final", server$url, sprintf("%.3f", now() + 60), final_out),
    stdout = file.path(work, "final.out"), stderr = "2>&1")
  children$final <- final
  # All six on a worker (the pool grows from n_min for them), then stop.
  deadline <- now() + 30
  while (sum(note_workers()$busy) < 6 && now() < deadline) Sys.sleep(0.05)
  in_flight_at_stop <- sum(note_workers()$busy)
  stop_started <- now()
  valve_stop(server, grace = settings$grace)
  stop_seconds <- now() - stop_started
  stopped <- TRUE
  drain_logs()
  survivors <- union(seen_pids[vapply(seen_pids, worker_alive, logical(1))], all_worker_pids())
  deadline <- now() + settings$grace + 10
  while (final$is_alive() && now() < deadline) Sys.sleep(0.1)
  final_hung <- final$is_alive()
  if (final_hung) final$kill()
  clients_after_stop <- now() - stop_started

  # ---- report --------------------------------------------------------------------------------
  read_tsv <- function(path) {
    if (!file.exists(path) || length(readLines(path)) == 0) {
      return(data.frame(kind = character(), status = integer(), outcome = character(), seconds = numeric(), started = numeric()))
    }
    utils::read.delim(path, header = FALSE, col.names = c("kind", "status", "outcome", "seconds", "started"),
                      colClasses = c("character", "integer", "character", "numeric", "numeric"), quote = "")
  }
  results <- do.call(rbind, lapply(file.path(work, outputs), read_tsv))
  during_stop <- read_tsv(final_out)
  results$what <- ifelse(results$status == 0, results$outcome, paste(results$status, results$outcome))
  probes <- results[results$kind == "probe", ]
  timed <- results[!results$kind %in% c("queue_abort", "stalled_body", "hangup_after_send"), ]

  log <- readLines(log_file)
  count_log <- function(pattern) sum(grepl(pattern, log))
  problems <- character()
  expected_failure <- (results$status == 502 & results$outcome == "answered") | results$outcome == "closed"
  # Kinds where a closed connection or 502 is a kill's casualty; raw malformed requests never reach a worker.
  victims <- expected_failure & !startsWith(results$kind, "bad: ") & results$kind != "stalled_body"
  ok <- results$outcome %in% c("ok", "hung up", "hung up after 1 KB") |
    (results$kind == "queue_abort" & results$outcome %in% c("timeout", "ok")) | victims
  if (any(!ok)) {
    problems <- c(problems, sprintf("%d requests with an unexpected outcome", sum(!ok)))
  }
  if (sum(victims) > kills) {
    problems <- c(problems, sprintf("%d requests failed (502 or closed) but only %d workers were killed", sum(victims), kills))
  }
  slow <- timed$seconds > settings$request_timeout
  if (any(slow)) problems <- c(problems, sprintf("%d requests took longer than request_timeout (%d s)", sum(slow), settings$request_timeout))
  if (nrow(probes) < minutes * 30) problems <- c(problems, sprintf("only %d watchdog probes ran", nrow(probes)))
  if (!quiesced) problems <- c(problems, "the pool did not return to n_min idle workers after the traffic")
  if (end$threads > start$threads + settings$thread_margin) problems <- c(problems, "threads grew")
  if (end$fds > start$fds + settings$fd_margin) problems <- c(problems, "open fds grew")
  if (stop_seconds > settings$grace + settings$stop_margin) problems <- c(problems, "valve_stop() took too long")
  if (final_hung) problems <- c(problems, "a client was still waiting long after valve_stop() returned")
  if (length(survivors) > 0) problems <- c(problems, paste("worker processes outlived valve_stop():", paste(survivors, collapse = " ")))
  if (kills < minutes * 15) problems <- c(problems, sprintf("only %d kills", kills))
  if (count_log("stopping worker [0-9]+ .*: idle") == 0) problems <- c(problems, "no idle worker was reaped: the soak did not exercise reaping")

  print_counts <- function(rows) {
    for (kind in sort(unique(rows$kind))) {
      counts <- table(rows$what[rows$kind == kind])
      cat(sprintf("  %-40s %6d  %s\n", kind, sum(counts), paste(sprintf("%s: %d", names(counts), counts), collapse = ", ")))
    }
  }
  quantiles <- function(x) paste(sprintf("%.3f", stats::quantile(x, c(0.5, 0.99, 1), names = FALSE)), collapse = " / ")

  cat("\n======== valve soak summary ========\n")
  cat(sprintf("%.1f min of traffic; n_min %d, n_max %d, max_age %d s, check_unused %d s, request_timeout %d s, client_timeout %d s, -Xmx256m\n",
              minutes, settings$n_min, settings$n_max, settings$max_age, settings$check_unused,
              settings$request_timeout, settings$client_timeout))
  cat(sprintf("requests: %d (%.1f/s); workers killed (SIGKILL, busy): %d; kill casualties (502 or closed mid-answer): %d\n",
              nrow(results), nrow(results) / (minutes * 60), kills, sum(victims)))
  cat("\nrequests by kind and outcome ('closed' = connection closed without a full answer):\n")
  print_counts(results)
  cat("\nlatency by kind, seconds (p50 / p99 / max):\n")
  for (kind in sort(unique(timed$kind))) cat(sprintf("  %-40s %s\n", kind, quantiles(timed$seconds[timed$kind == kind])))
  cat(sprintf("longest request: %.3f s (%s); watchdog probes: %d, worst %.3f s, p99 %.3f s, failed %d\n",
              max(timed$seconds), timed$kind[which.max(timed$seconds)], nrow(probes), max(probes$seconds),
              stats::quantile(probes$seconds, 0.99, names = FALSE), sum(probes$outcome != "ok")))
  cat(sprintf("engine log: %d workers started, %d reaped idle, %d exits seen, %d queued requests dropped on hang-up, %d responses broken off\n",
              count_log("ready in [0-9]+ ms"), count_log("stopping worker [0-9]+ .*: idle"), count_log("\\) exited"),
              count_log("hung up while its request waited"), count_log("broke off its response")))
  cat("\nengine process samples (every 10 s; first = start after warm-up, last = end after quiescing):\n")
  per_minute <- samples[!duplicated(floor(samples$minute)) | seq_len(nrow(samples)) == nrow(samples), ]
  print(per_minute, row.names = FALSE)
  cat(sprintf("threads %d -> %d (max %d), open fds %d -> %d (max %d), RSS %.1f -> %.1f MiB (max %.1f)\n",
              start$threads, end$threads, max(samples$threads), start$fds, end$fds, max(samples$fds),
              start$rss_mib, end$rss_mib, max(samples$rss_mib)))
  cat(sprintf("\nvalve_stop(grace = %d) with %d requests in flight: returned in %.2f s (limit %d s); its clients all ended %.2f s after the stop began\n",
              settings$grace, in_flight_at_stop, stop_seconds, settings$grace + settings$stop_margin, clients_after_stop))
  during_stop$what <- ifelse(during_stop$status == 0, during_stop$outcome, paste(during_stop$status, during_stop$outcome))
  print_counts(during_stop)
  cat(sprintf("worker pids seen during the run: %d; alive after valve_stop(): %d\n", length(seen_pids), length(survivors)))
  if (any(!ok)) {
    cat("\nunexpected outcomes (first 20):\n")
    print(utils::head(results[!ok, c("kind", "status", "outcome", "seconds")], 20), row.names = FALSE)
  }
  cat(sprintf("\nfiles (engine log, per-request records): %s\n", work))
  if (length(problems) > 0) {
    cat("soak: FAILED:", paste(problems, collapse = "; "), "\n")
    return(1L)
  }
  cat("soak: ok\n")
  0L
}

# ---- entry point -----------------------------------------------------------------------------
args <- commandArgs(trailingOnly = TRUE)
role <- sub("^--role=", "", grep("^--role=", args, value = TRUE))
if (length(role) == 1) {
  rest <- args[!startsWith(args, "--role=")]
  get(paste0("role_", role))(url = rest[1], until = as.numeric(rest[2]), out = rest[3])
  quit(status = 0)
}
minutes <- suppressWarnings(as.numeric(args[1]))
if (is.na(minutes)) minutes <- 10
quit(status = main(minutes))
