# valve benchmark: valve (in R, via rJava), the valve CLI (java -jar), HAProxy and nginx in front
# of the same number of plumber workers, and one plumber process alone, measured with wrk.
# Run with `make bench`.
#
# A shared or noisy machine drifts by 20-25 % within a minute, so one run per setup proves
# nothing. Every setup is started once and kept for the whole run; the measurements are made
# in ROUNDS. Within a round each scenario is measured for every setup back to back, the setups'
# order rotated from round to round (round 1: valve, haproxy, nginx, valve-cli; round 2:
# haproxy, nginx, valve-cli, valve; ...). The report gives, per scenario, the median over rounds
# of the per-round ratios (valve/haproxy, valve/nginx, valve-cli/haproxy) with their min-max,
# and medians of req/s, latency and CPU per request.
#
# Environment: BENCH_SECONDS (per measurement, default 5), BENCH_ROUNDS (default 3, at least 1),
# BENCH_WORKERS (default 4), BENCH_STARTUP_REPS (default 3), BENCH_OUT (folder for results,
# default bench/results).
#
# Output: bench/latest.md and bench/latest.png (overwritten), and in BENCH_OUT a copy of the report
# (bench-<stamp>.md) and every single measurement (bench-<stamp>.csv: round, order within the
# round, scenario, setup, req/s, p50, p99, errors, requests, front and workers CPU ms/request).
# With the defaults (3 rounds of 5 s) a run takes about 13-16 minutes. Every process started here is stopped here, by PID, also on error
# (and by processx's supervisor if this R process is killed).

library(processx)

seconds <- as.numeric(Sys.getenv("BENCH_SECONDS", "5"))
rounds <- max(1L, as.integer(Sys.getenv("BENCH_ROUNDS", "3")))
n_workers <- as.integer(Sys.getenv("BENCH_WORKERS", "4"))
startup_reps <- max(1L, as.integer(Sys.getenv("BENCH_STARTUP_REPS", "3")))
idle_wait <- 12
bench_dir <- normalizePath(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))))
out_dir <- Sys.getenv("BENCH_OUT", file.path(bench_dir, "results"))
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
api <- file.path(bench_dir, "api.R")
rscript <- file.path(R.home("bin"), "Rscript")
valve_cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
work <- tempfile("valve-bench-")
dir.create(work)
clk_tck <- as.numeric(system2("getconf", "CLK_TCK", stdout = TRUE))
bench_started <- Sys.time()

log_line <- function(...) cat(sprintf("[%s] ", format(Sys.time(), "%H:%M:%S")), sprintf(...), "\n", sep = "")
failures <- character()
fail <- function(...) {
  message <- sprintf(...)
  failures <<- c(failures, message)
  log_line("FAILURE: %s", message)
}

processes <- list()
track <- function(p) {
  processes[[length(processes) + 1]] <<- p
  p
}
stop_process <- function(p) {
  if (!p$is_alive()) return(invisible())
  p$interrupt()
  p$wait(5000)
  if (p$is_alive()) {
    p$signal(tools::SIGTERM)
    p$wait(3000)
  }
  if (p$is_alive()) p$kill()
}
stop_all <- function() {
  for (p in rev(processes)) try(stop_process(p), silent = TRUE)
  processes <<- list()
}
# At top level on.exit() does nothing: stop everything when R exits, on error as well.
invisible(reg.finalizer(environment(), function(e) stop_all(), onexit = TRUE))

free_port <- function() httpuv::randomPort(min = 20000, max = 40000)

wait_http <- function(url, p, timeout = 60, log = NULL) {
  deadline <- Sys.time() + timeout
  repeat {
    ok <- tryCatch(curl::curl_fetch_memory(url)$status_code < 500, error = function(e) FALSE)
    if (ok) return(invisible(TRUE))
    if (!p$is_alive()) {
      stop("the process for ", url, " exited with status ", p$get_exit_status(),
           if (!is.null(log) && file.exists(log)) paste0(":\n", paste(tail(readLines(log), 20), collapse = "\n")))
    }
    if (Sys.time() > deadline) stop("nothing answers at ", url)
    Sys.sleep(0.05)
  }
}

# --- the kernel's accounting -------------------------------------------------------------------

# Every process: pid, parent pid, CPU ticks (utime + stime, all threads), in one pass over /proc.
proc_table <- function() {
  pids <- suppressWarnings(as.integer(list.files("/proc", pattern = "^[0-9]+$")))
  stats <- vapply(pids, function(pid) {
    line <- tryCatch(suppressWarnings(readLines(sprintf("/proc/%d/stat", pid), n = 1, warn = FALSE)), error = function(e) "")
    if (!length(line) || !nzchar(line)) return(NA_character_)
    line
  }, character(1))
  keep <- !is.na(stats)
  pids <- pids[keep]
  # Fields after the command (which may contain spaces and parentheses): state is field 3.
  rest <- strsplit(sub("^.*\\) ", "", stats[keep]), " ", fixed = TRUE)
  data.frame(
    pid = pids,
    ppid = vapply(rest, function(f) as.integer(f[[2]]), integer(1)),
    ticks = vapply(rest, function(f) as.numeric(f[[12]]) + as.numeric(f[[13]]), numeric(1))
  )
}

descendants <- function(table, root) {
  found <- integer()
  frontier <- root
  while (length(frontier)) {
    children <- table$pid[table$ppid %in% frontier]
    children <- setdiff(children, c(found, root))
    found <- c(found, children)
    frontier <- children
  }
  found
}

# CPU seconds used by `pids` between two tables; NA if one of them is gone.
cpu_seconds <- function(before, after, pids) {
  if (!length(pids)) return(NA_real_)
  b <- before$ticks[match(pids, before$pid)]
  a <- after$ticks[match(pids, after$pid)]
  if (anyNA(a) || anyNA(b)) return(NA_real_)
  sum(a - b) / clk_tck
}

rss_mib <- function(pid, field = "VmRSS") {
  if (is.na(pid)) return(NA_real_)
  status <- tryCatch(suppressWarnings(readLines(file.path("/proc", pid, "status"))), error = function(e) character())
  line <- grep(paste0("^", field, ":"), status, value = TRUE)
  if (!length(line)) return(NA_real_)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}

# --- start-up and memory, in fresh R processes (before anything else runs) ---------------------

# preload: with preforked workers (issue 13), which changes how fast the pool grows
startup_script <- function(preload) sprintf('
  t0 <- Sys.time()
  s <- valve::valve_start(%s, port = 0, n_min = 1, n_max = 8, max_age = 3600, docs = FALSE, preload = %s)
  repeat if (tryCatch(curl::curl_fetch_memory(paste0(s$url, "/fast"))$status_code == 200, error = function(e) FALSE)) break
  first <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  rss <- as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE))) / 1024
  pool <- curl::new_pool(total_con = 8, host_con = 8)
  for (i in 1:8) curl::curl_fetch_multi(paste0(s$url, "/sleep?ms=3000"), pool = pool, done = function(r) NULL, fail = function(e) NULL)
  t1 <- Sys.time()
  invisible(curl::multi_run(timeout = 0.05, pool = pool))
  while (nrow(valve::valve_workers(s)) < 8 && as.numeric(difftime(Sys.time(), t1, units = "secs")) < 60) curl::multi_run(timeout = 0.01, pool = pool)
  burst <- as.numeric(difftime(Sys.time(), t1, units = "secs"))
  invisible(curl::multi_run(pool = pool))
  valve::valve_stop(s, grace = 0)
  cat("TIMING", first, burst, rss, "\\n")', deparse(api), preload)
library_script <- 't <- Sys.time(); library(valve); cat("LIBRARY", as.numeric(difftime(Sys.time(), t, units = "secs")), "\\n")'
bare_script <- 'rJava::.jinit(); cat("BARE", as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE))) / 1024, "\\n")'

tagged <- function(script, tag, timeout = 120) {
  out <- tryCatch(run(rscript, c("--no-init-file", "-e", script), timeout = timeout, error_on_status = TRUE)$stdout,
                  error = function(e) { fail("start-up measurement %s: %s", tag, conditionMessage(e)); "" })
  line <- grep(paste0("^", tag, " "), strsplit(out, "\n")[[1]], value = TRUE)
  if (!length(line)) return(NA_real_)
  as.numeric(strsplit(trimws(line[[1]]), " +")[[1]][-1])
}

log_line("valve bench: %d workers, %d round(s) of %g s per measurement", n_workers, rounds, seconds)
log_line("start-up and memory, %d repetition(s), interleaved", startup_reps)
startup <- data.frame()
for (i in seq_len(startup_reps)) {
  lib <- tagged(library_script, "LIBRARY")
  t <- tagged(startup_script(FALSE), "TIMING")
  if (length(t) < 3) t <- rep(NA_real_, 3)
  pre <- tagged(startup_script(TRUE), "TIMING")
  if (length(pre) < 3) pre <- rep(NA_real_, 3)
  bare <- tagged(bare_script, "BARE")
  startup <- rbind(startup, data.frame(library_s = lib[1], first_ok_s = t[1], burst_s = t[2],
                                       rss_started_mib = t[3], rss_bare_jvm_mib = bare[1],
                                       preload_first_ok_s = pre[1], preload_burst_s = pre[2]))
}

# --- the targets -------------------------------------------------------------------------------

# A port chosen free can be taken by someone else before the server binds it: a few attempts.
with_retries <- function(what, start, attempts = 3) {
  for (i in seq_len(attempts)) {
    result <- tryCatch(start(), error = function(e) e)
    if (!inherits(result, "error")) return(result)
    log_line("%s did not start (attempt %d of %d): %s", what, i, attempts, conditionMessage(result))
  }
  stop(what, " did not start: ", conditionMessage(result))
}

start_plumber <- function() with_retries("a plumber worker", function() {
  port <- free_port()
  log <- tempfile("plumber-", tmpdir = work, fileext = ".log")
  p <- track(process$new(rscript, c("--no-init-file", "-e", sprintf(
    "plumber::pr_run(plumber::plumb(%s), host = '127.0.0.1', port = %d, docs = FALSE, quiet = TRUE)",
    deparse(api), port
  )), stdout = NULL, stderr = log, supervise = TRUE))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p, log = log)
  list(process = p, port = port)
})

start_haproxy <- function(worker_ports) with_retries("haproxy", function() {
  port <- free_port()
  config <- file.path(work, "haproxy.cfg")
  writeLines(c(
    "global", "  maxconn 4096",
    "defaults", "  mode http", "  timeout connect 5s", "  timeout client 120s",
    "  timeout server 120s", "  timeout queue 120s",
    "  option http-server-close", "  http-reuse never",
    "frontend bench", sprintf("  bind 127.0.0.1:%d", port), "  default_backend workers",
    "backend workers", "  balance leastconn",
    sprintf("  server w%d 127.0.0.1:%d maxconn 1", seq_along(worker_ports), worker_ports)
  ), config)
  log <- file.path(work, "haproxy.log")
  p <- track(process$new("haproxy", c("-db", "-f", config), stdout = NULL, stderr = log, supervise = TRUE))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p, log = log)
  list(process = p, port = port)
})

start_nginx <- function(worker_ports) with_retries("nginx", function() {
  port <- free_port()
  prefix <- file.path(work, "nginx")
  dir.create(prefix, showWarnings = FALSE)
  config <- file.path(prefix, "nginx.conf")
  writeLines(c(
    "user root;", "worker_processes auto;", sprintf("pid %s/nginx.pid;", prefix),
    "error_log stderr error;", "events { worker_connections 4096; }",
    "http {", "  access_log off;",
    sprintf("  client_body_temp_path %s/body;", prefix),
    sprintf("  proxy_temp_path %s/proxy;", prefix),
    "  client_max_body_size 10m;",
    "  upstream workers {", "    least_conn;",
    sprintf("    server 127.0.0.1:%d;", worker_ports), "  }",
    "  server {", sprintf("    listen 127.0.0.1:%d;", port),
    "    location / { proxy_pass http://workers; proxy_read_timeout 120s; }", "  }", "}"
  ), config)
  log <- file.path(work, "nginx.log")
  p <- track(process$new("nginx", c("-p", prefix, "-c", config, "-g", "daemon off;"), stdout = NULL,
                         stderr = log, supervise = TRUE))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p, log = log)
  list(process = p, port = port)
})

# options: further valve_start() arguments as "name=value" (serve-valve.R)
start_valve <- function(n_min, n_max, options = character()) {
  url_file <- tempfile(tmpdir = work)
  log <- tempfile("valve-", tmpdir = work, fileext = ".log")
  p <- track(process$new(rscript, c("--no-init-file", file.path(bench_dir, "serve-valve.R"), api, n_min, n_max, url_file, options),
                         stdout = NULL, stderr = log, supervise = TRUE))
  deadline <- Sys.time() + 120
  while (!file.exists(url_file) || length(readLines(url_file)) == 0) {
    if (!p$is_alive()) stop("valve did not start: ", paste(readLines(log), collapse = "\n"))
    if (Sys.time() > deadline) stop("valve did not start in time")
    Sys.sleep(0.05)
  }
  url <- readLines(url_file)
  wait_http(paste0(url, "/fast"), p, log = log)
  list(process = p, port = as.integer(sub(".*:", "", url)), url = url)
}

# The CLI as a container runs it: inst/bin/valve (java -jar valve-engine.jar) from the installed package.
start_valve_cli <- function(n) with_retries("valve-cli", function() {
  port <- free_port()
  log <- file.path(work, "valve-cli.log")
  p <- track(process$new(valve_cli, c("-f", api, "--n-min", n, "-n", n, "--port", port, "--max-age", 3600),
                         stdout = log, stderr = "2>&1", supervise = TRUE))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p, timeout = 120, log = log)
  # All n workers ready, so the first measurement does not count a start-up.
  deadline <- Sys.time() + 60
  while (length(descendants(proc_table(), p$get_pid())) < n && Sys.time() < deadline) Sys.sleep(0.1)
  list(process = p, port = port)
})

# --- measuring ---------------------------------------------------------------------------------

parse_ms <- function(text) {
  if (length(text) == 0) return(NA_real_)
  value <- as.numeric(sub("[a-z]+$", "", text))
  unit <- sub("^[0-9.]+", "", text)
  value * c(us = 1e-3, ms = 1, s = 1e3, m = 6e4)[[unit]]
}

empty_result <- data.frame(rps = NA_real_, p50_ms = NA_real_, p99_ms = NA_real_, errors = NA_real_, requests = NA_real_)

wrk <- function(port, path, connections, script = NULL, duration = seconds, headers = character()) {
  args <- c("-t", min(2, connections), "-c", connections, "-d", paste0(duration, "s"),
            "--timeout", "30s", "--latency")
  for (header in headers) args <- c(args, "-H", header)
  if (!is.null(script)) args <- c(args, "-s", script)
  res <- run("wrk", c(args, sprintf("http://127.0.0.1:%d%s", port, path)), error_on_status = FALSE,
             timeout = duration + 60)
  out <- res$stdout
  line <- function(pattern) regmatches(out, regexpr(pattern, out))
  rps <- as.numeric(c(sub(".*:\\s*", "", line("Requests/sec:\\s*[0-9.]+")), NA))[1]
  requests <- as.numeric(c(sub(" requests in.*", "", line("[0-9]+ requests in")), NA))[1]
  p50 <- parse_ms(sub("^\\s*50%\\s*", "", line("50%\\s*[0-9.]+[a-z]+")))
  p99 <- parse_ms(sub("^\\s*99%\\s*", "", line("99%\\s*[0-9.]+[a-z]+")))
  socket <- line("Socket errors:[^\n]*")
  socket_errors <- if (length(socket)) sum(as.numeric(regmatches(socket, gregexpr("[0-9]+", socket))[[1]])) else 0
  non2xx <- line("Non-2xx or 3xx responses: [0-9]+")
  non2xx <- if (length(non2xx)) as.numeric(sub(".*: ", "", non2xx)) else 0
  if (is.na(rps)) {
    fail("wrk %s on port %d gave no result (status %s): %s", path, port, res$status, trimws(paste(res$stdout, res$stderr)))
  }
  data.frame(rps = rps, p50_ms = p50, p99_ms = p99, errors = socket_errors + non2xx, requests = requests)
}

scenarios <- list(
  list(name = "/fast c=1", path = "/fast", c = 1),
  list(name = "/fast c=8", path = "/fast", c = 8),
  list(name = "/fast c=32", path = "/fast", c = 32),
  list(name = "mixed: /fast c=8 + /sleep?ms=500 c=2", path = "/fast", c = 8, mixed = TRUE),
  list(name = "/sleep?ms=100 c=8", path = "/sleep?ms=100", c = 8),
  list(name = "/sleep?ms=100 c=32", path = "/sleep?ms=100", c = 32),
  list(name = "/cpu c=8", path = "/cpu", c = 8),
  list(name = "POST 1 MiB c=8", path = "/echo", c = 8, script = file.path(bench_dir, "post.lua")),
  list(name = "GET 1 MB c=8", path = "/bytes?n=1000000", c = 8)
)

# Requests a client gave up on may still be queued or running (a worker finishes what it started):
# wait until one /fast request goes through, so the next measurement does not inherit them.
settle <- function(setup, timeout = 60) {
  handle <- curl::new_handle(timeout = timeout)
  ok <- tryCatch(curl::curl_fetch_memory(sprintf("http://127.0.0.1:%d/fast", setup$port), handle = handle)$status_code == 200,
                 error = function(e) FALSE)
  if (!ok) fail("%s did not answer /fast within %d s before a measurement", setup$name, timeout)
}

# One wrk run against one setup, with the kernel's CPU accounting of its front and its workers
# read right before and right after. In the mixed scenario the /sleep load runs alongside and its
# few requests (about 4 per second) are not counted in the divisor.
measure <- function(scenario, setup, headers = character()) {
  if (!setup$process$is_alive()) {
    fail("%s is no longer running (exit status %s); %s not measured", setup$name, setup$process$get_exit_status(), scenario$name)
    return(cbind(empty_result, front_ms = NA_real_, workers_ms = NA_real_))
  }
  settle(setup)
  if (isTRUE(scenario$mixed)) {
    slow <- process$new("wrk", c("-t", "1", "-c", "2", "-d", paste0(seconds + 2, "s"), "--timeout", "30s",
                                 sprintf("http://127.0.0.1:%d/sleep?ms=500", setup$port)), stdout = NULL, supervise = TRUE)
    on.exit(if (slow$is_alive()) slow$kill())
    Sys.sleep(1)
  }
  before <- proc_table()
  front <- setup$front(before)
  workers <- setup$workers(before)
  result <- wrk(setup$port, scenario$path, scenario$c, scenario$script, headers = headers)
  after <- proc_table()
  if (isTRUE(result$requests == 0)) fail("%s, %s: wrk completed no request", scenario$name, setup$name)
  per_request <- function(pids) if (isTRUE(result$requests > 0)) 1000 * cpu_seconds(before, after, pids) / result$requests else NA_real_
  cbind(result, front_ms = per_request(front), workers_ms = per_request(workers))
}

# --- the setups, kept for the whole run --------------------------------------------------------

log_line("starting the setups")
plumbers <- lapply(seq_len(n_workers), function(i) start_plumber())
worker_ports <- vapply(plumbers, `[[`, numeric(1), "port")
worker_pids <- vapply(plumbers, function(w) w$process$get_pid(), integer(1))
alone <- start_plumber()
# A setup that does not start is reported and left out of the rounds; the others still run.
try_start <- function(name, start) tryCatch(start(), error = function(e) {
  fail("%s did not start, so it is not measured: %s", name, conditionMessage(e))
  NULL
})
valve <- try_start("valve", function() start_valve(n_workers, n_workers))
valve_pid <- if (!is.null(valve)) valve$process$get_pid() else NA_integer_
rss_valve_start <- rss_mib(valve_pid)
# The same valve without its access log, for what the log costs (measured on /fast c=8 only).
quiet <- try_start("valve, access_log = FALSE", function() start_valve(n_workers, n_workers, "access_log=FALSE"))
cli <- try_start("valve-cli", function() start_valve_cli(n_workers))
cli_pid <- if (!is.null(cli)) cli$process$get_pid() else NA_integer_
rss_cli_start <- rss_mib(cli_pid)
haproxy <- try_start("haproxy", function() start_haproxy(worker_ports))
nginx <- try_start("nginx", function() start_nginx(worker_ports))

# front(table) and workers(table): the pids whose CPU is counted, read from a process table.
self_and_children <- function(pid) function(table) c(pid, descendants(table, pid))
only <- function(pids) function(table) pids
children_of <- function(pid) function(table) descendants(table, pid)
setup <- function(name, started, front, workers) {
  if (is.null(started)) return(NULL)
  list(name = name, process = started$process, port = started$port, front = front, workers = workers)
}
setups <- list(
  valve = setup("valve", valve, only(valve_pid), children_of(valve_pid)),
  haproxy = setup("haproxy", haproxy, self_and_children(haproxy$process$get_pid()), only(worker_pids)),
  nginx = setup("nginx", nginx, self_and_children(nginx$process$get_pid()), only(worker_pids)),
  `valve-cli` = setup("valve-cli", cli, only(cli_pid), children_of(cli_pid)),
  # Measured like the others, so that its JIT is as warm as valve's when the two are compared.
  `valve, access_log = FALSE` = setup("valve, access_log = FALSE", quiet, only(quiet$process$get_pid()),
                                      children_of(quiet$process$get_pid()))
)
setups <- setups[!vapply(setups, is.null, logical(1))]
if (!length(setups)) stop("no setup started: ", paste(failures, collapse = "; "))
reference <- list(
  alone = list(name = "plumber alone", process = alone$process, port = alone$port,
               front = function(table) integer(), workers = only(alone$process$get_pid())),
  direct = list(name = "worker direct, Connection: close", process = plumbers[[1]]$process, port = worker_ports[[1]],
                front = function(table) integer(), workers = only(worker_pids[[1]]))
)
for (s in names(setups)) {
  n <- length(setups[[s]]$workers(proc_table()))
  if (n != n_workers) fail("%s: %d worker process(es) found for its CPU accounting, expected %d", s, n, n_workers)
}

# Warm-up: every request shape, so the JVMs have compiled their hot paths before anything counts.
# C2 compiles a method after some 10,000 calls: the engines get 12 s of /fast (without it, their
# first round measured 0.4-0.6 ms of CPU per request, half of it the compiler's).
log_line("warming up")
for (s in c(setups, reference["alone"])) {
  long <- s$name %in% c("valve", "valve-cli", "valve, access_log = FALSE")
  wrk(s$port, "/fast", 8, duration = if (long) 12 else 1)
  wrk(s$port, "/echo", 4, script = file.path(bench_dir, "post.lua"), duration = if (long) 3 else 1)
  wrk(s$port, "/bytes?n=1000000", 4, duration = if (long) 3 else 1)
}

# --- the rounds --------------------------------------------------------------------------------

rows <- list()
record <- function(round, position, scenario, name, result) {
  rows[[length(rows) + 1]] <<- cbind(round = round, position = position, scenario = scenario$name, setup = name, result)
  log_line("round %d  %-38s %-33s %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  cpu/req front %6.3f workers %6.3f ms  errors %s",
           round, scenario$name, name, result$rps, result$p50_ms, result$p99_ms, result$front_ms, result$workers_ms,
           format(result$errors))
}
orders <- character(rounds)
for (round in seq_len(rounds)) {
  shift <- (round - 1) %% length(setups)
  order <- names(setups)[(seq_along(setups) - 1 + shift) %% length(setups) + 1]
  orders[round] <- paste(order, collapse = ", ")
  log_line("round %d of %d: %s", round, rounds, orders[round])
  for (scenario in scenarios) {
    for (i in seq_along(order)) record(round, i, scenario, order[[i]], measure(scenario, setups[[order[[i]]]]))
    # The floor for one request through any proxy, in the same round: a fresh connection straight to one worker.
    if (scenario$name == "/fast c=1") {
      record(round, length(order) + 1, scenario, "worker direct", measure(scenario, reference$direct, headers = "Connection: close"))
    }
    # One plumber process alone, for scale: once, in the first round.
    if (round == 1) record(round, length(order) + 1, scenario, "plumber alone", measure(scenario, reference$alone))
  }
}
results <- do.call(rbind, rows)

rss_valve_end <- rss_mib(valve_pid)
hwm_valve <- rss_mib(valve_pid, "VmHWM")
rss_cli_end <- rss_mib(cli_pid)
hwm_cli <- rss_mib(cli_pid, "VmHWM")
# The engine gives its heap back once it has been quiet for a while (IdleHeap: one full
# collection after a quiet 5 s period): what an R session holds between bursts.
Sys.sleep(idle_wait)
rss_valve_idle <- rss_mib(valve_pid)
rss_cli_idle <- rss_mib(cli_pid)
stop_all()

# --- Valve's published scenario: 100 requests to /sleep?ms=500, 5 at a time, n_max = 5; once ---

hundred <- function(n_min, preload = FALSE) {
  v <- start_valve(n_min, 5, if (preload) "preload=TRUE")
  on.exit(stop_all())
  pool <- curl::new_pool(total_con = 5, host_con = 5)
  statuses <- integer()
  started <- Sys.time()
  for (i in 1:100) {
    curl::curl_fetch_multi(paste0(v$url, "/sleep?ms=500"), pool = pool,
      done = function(r) statuses <<- c(statuses, r$status_code), fail = function(e) statuses <<- c(statuses, NA))
  }
  curl::multi_run(pool = pool)
  elapsed <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  if (!all(statuses %in% 200L)) fail("published scenario, n_min = %d: not every request succeeded: %s", n_min,
                                     paste(names(table(statuses, useNA = "ifany")), table(statuses, useNA = "ifany"), collapse = " "))
  elapsed
}
log_line("Valve's published scenario")
published <- vapply(list(c(5, 0), c(1, 0), c(1, 1)), function(run) tryCatch(hundred(run[1], run[2] == 1), error = function(e) {
  fail("published scenario, n_min = %d: %s", run[1], conditionMessage(e)); NA_real_ }), numeric(1))

# --- the report --------------------------------------------------------------------------------

fmt <- function(x, digits = 1) ifelse(is.na(x), "n/a", formatC(x, format = "f", digits = digits))
med <- function(x) if (all(is.na(x))) NA_real_ else stats::median(x, na.rm = TRUE)
rng <- function(x, digits = 2) if (all(is.na(x))) "n/a" else sprintf("%s to %s", fmt(min(x, na.rm = TRUE), digits), fmt(max(x, na.rm = TRUE), digits))
scenario_names <- vapply(scenarios, `[[`, character(1), "name")
setup_names <- c("valve", "haproxy", "nginx", "valve-cli", "valve, access_log = FALSE")
value <- function(scenario, setup, round, column) {
  x <- results[results$scenario == scenario & results$setup == setup & results$round == round, column]
  if (length(x)) x[[1]] else NA_real_
}
ratios <- function(scenario, a, b, column = "rps") {
  vapply(seq_len(rounds), function(r) value(scenario, a, r, column) / value(scenario, b, r, column), numeric(1))
}
ratio_cell <- function(x) sprintf("%s (%s)", fmt(med(x), 2), rng(x))

ratio_lines <- c(
  "| scenario | valve / HAProxy | valve / nginx | valve-cli / HAProxy | valve p99 / HAProxy p99 | valve-cli p99 / HAProxy p99 |",
  "|---|---:|---:|---:|---:|---:|")
for (s in scenario_names) {
  ratio_lines <- c(ratio_lines, sprintf("| %s | %s | %s | %s | %s | %s |", s,
    ratio_cell(ratios(s, "valve", "haproxy")), ratio_cell(ratios(s, "valve", "nginx")),
    ratio_cell(ratios(s, "valve-cli", "haproxy")), ratio_cell(ratios(s, "valve", "haproxy", "p99_ms")),
    ratio_cell(ratios(s, "valve-cli", "haproxy", "p99_ms"))))
}

summary_rows <- list()
for (s in scenario_names) for (t in c(setup_names, "worker direct", "plumber alone")) {
  here <- results[results$scenario == s & results$setup == t, ]
  if (!nrow(here)) next
  summary_rows[[length(summary_rows) + 1]] <- data.frame(
    scenario = s, setup = t, n = sum(!is.na(here$rps)), rps = med(here$rps), rps_min = suppressWarnings(min(here$rps, na.rm = TRUE)),
    rps_max = suppressWarnings(max(here$rps, na.rm = TRUE)), p50_ms = med(here$p50_ms), p99_ms = med(here$p99_ms),
    front_ms = med(here$front_ms), workers_ms = med(here$workers_ms), errors = sum(here$errors, na.rm = TRUE))
}
summary <- do.call(rbind, summary_rows)
summary_lines <- c(
  "| scenario | setup | rounds | req/s (median) | req/s min-max | p50 ms | p99 ms | front CPU ms/req | workers CPU ms/req | errors (all rounds) |",
  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  sprintf("| %s | %s | %d | %s | %s-%s | %s | %s | %s | %s | %d |", summary$scenario, summary$setup, summary$n, fmt(summary$rps),
          fmt(summary$rps_min), fmt(summary$rps_max), fmt(summary$p50_ms, 2), fmt(summary$p99_ms, 2),
          ifelse(summary$setup %in% c("worker direct", "plumber alone"), "-", fmt(summary$front_ms, 3)),
          fmt(summary$workers_ms, 3), as.integer(summary$errors)))

c1 <- "/fast c=1"
p50_over_direct <- function(setup) {
  vapply(seq_len(rounds), function(r) value(c1, setup, r, "p50_ms") - value(c1, "worker direct", r, "p50_ms"), numeric(1))
}
latency_lines <- vapply(c("valve", "valve-cli", "haproxy", "nginx"), function(t) {
  d <- p50_over_direct(t)
  sprintf("- %s: p50 %s ms, %s ms over a direct `Connection: close` request to one worker (median of the per-round differences; range %s)",
          t, fmt(med(results$p50_ms[results$scenario == c1 & results$setup == t]), 2), fmt(med(d), 2), rng(d))
}, character(1))

all_lines <- c(
  "| round | order | scenario | setup | req/s | p50 ms | p99 ms | requests | front CPU ms/req | workers CPU ms/req | errors |",
  "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
  sprintf("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", results$round, results$position, results$scenario, results$setup,
          fmt(results$rps), fmt(results$p50_ms, 2), fmt(results$p99_ms, 2), fmt(results$requests, 0),
          fmt(results$front_ms, 3), fmt(results$workers_ms, 3), fmt(results$errors, 0)))

cpu_model <- sub("^model name\\s*:\\s*", "", grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1])
java_bin <- file.path(system2(system.file("bin", "find-jdk", package = "valve"), stdout = TRUE)[1], "bin", "java")
java_version <- tryCatch(system2(java_bin, "-version", stdout = TRUE, stderr = TRUE)[1], error = function(e) "unknown")
machine <- sprintf("%d cores (nproc %s), %s, %s, R %s, %s, %s, nginx %s, %s",
                   parallel::detectCores(), system2("nproc", stdout = TRUE), cpu_model,
                   sub("^PRETTY_NAME=\"?([^\"]*)\"?$", "\\1", grep("^PRETTY_NAME", readLines("/etc/os-release"), value = TRUE)),
                   getRversion(), java_version, trimws(sub(" - https.*", "", c(suppressWarnings(system2("haproxy", "-v", stdout = TRUE, stderr = FALSE)), "HAProxy: version unknown")[1])),
                   sub("^nginx version: nginx/", "", system2("nginx", "-v", stderr = TRUE, stdout = TRUE)[1]),
                   sub(" \\[.*", "", trimws(suppressWarnings(system2("wrk", "-v", stdout = TRUE, stderr = TRUE))[1])))
elapsed_min <- as.numeric(difftime(Sys.time(), bench_started, units = "mins"))

report <- c(
  sprintf("# valve benchmark, %s", format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")),
  "",
  sprintf("Machine: %s. wrk shares the same cores as everything it measures.", machine),
  "",
  sprintf("%d plumber workers per setup; %d round(s), wrk for %g s per measurement; the whole run took %.1f min.",
          n_workers, rounds, seconds, elapsed_min),
  "Setups: **valve** (`valve_start()` in an R process, engine in rJava's JVM, `n_min = n_max = workers`);",
  "**valve-cli** (the same engine as `inst/bin/valve -f api.R --n-min N -n N`, i.e. `java -jar valve-engine.jar`, as in a container);",
  "**haproxy** (leastconn, `maxconn 1` per worker, queue in HAProxy, no upstream keep-alive);",
  "**nginx** (least_conn, no upstream keep-alive); **valve, access_log = FALSE** (valve as above without its access log, for what the log costs).",
  "HAProxy and nginx share one set of plumber workers; each valve setup runs its own.",
  "Every setup is started once and kept; in each round every scenario is measured for each setup back to back,",
  sprintf("the setups' order rotated by one per round (%s).", paste(sprintf("round %d: %s", seq_len(rounds), orders), collapse = "; ")),
  "A ratio is computed within a round (setups measured seconds apart) and the table gives its median over rounds, with the min to max in parentheses.",
  "",
  "## Ratios (req/s, and p99 latency: lower is better), median (min to max) over rounds", "", ratio_lines, "",
  "Mixed: /fast at 8 connections while 2 connections request /sleep?ms=500; its req/s and p99 are /fast's.", "",
  sprintf("What the access log costs, /fast c=8: valve (access log on, its default) / the same valve with `access_log = FALSE` (a fifth setup, measured in every scenario like the others): %s req/s, %s front CPU per request (median (min to max) over rounds). Metrics are always recorded, in both.",
          ratio_cell(ratios("/fast c=8", "valve", "valve, access_log = FALSE")), ratio_cell(ratios("/fast c=8", "valve", "valve, access_log = FALSE", "front_ms"))), "",
  "## Latency at one connection (/fast, c=1)", "", latency_lines, "",
  "## Medians over rounds, with CPU per request", "",
  "CPU per request: utime + stime from /proc/<pid>/stat (all threads; clock ticks of 1/CLK_TCK s) read right before and right after each wrk run,",
  "divided by the requests wrk completed. Front: the R process hosting valve (R + JVM + engine), the CLI's java process, haproxy's process, nginx's master and worker processes.",
  "Workers: the sum over the plumber worker processes (for valve and valve-cli, the engine's children).",
  "The kernel counts in clock ticks (10 ms at CLK_TCK 100): over a run of N requests a figure is exact to about 10/N ms, so a light front at c=1 can read 0.",
  "wrk itself (not counted) competes for the same cores. 'worker direct' is measured every round, 'plumber alone' in round 1 only.", "",
  summary_lines, "",
  "## Valve's published scenario (100 requests to /sleep?ms=500, 5 at a time, n_max = 5), once per `make bench`", "",
  "| valve | total time | Valve (Rust) reported | limit |", "|---|---:|---:|---:|",
  sprintf("| n_min = 5 | %s s | 10.2 s | 10.0 s |", fmt(published[1], 2)),
  sprintf("| n_min = 1 (autoscaling from cold) | %s s | 10.2 s | 10.0 s |", fmt(published[2], 2)),
  sprintf("| n_min = 1, `preload = TRUE` (workers forked from a template) | %s s | 10.2 s | 10.0 s |", fmt(published[3], 2)),
  "", sprintf("## Start-up and memory (medians of %d interleaved repetitions, each in a fresh R process, before the setups start)", startup_reps), "",
  sprintf("- `library(valve)` in a fresh Rscript: %s s (range %s)", fmt(med(startup$library_s), 3), rng(startup$library_s, 3)),
  sprintf("- `valve_start(n_min = 1)` in a fresh Rscript to the first 200 OK (loading the package included): %s s (range %s)",
          fmt(med(startup$first_ok_s), 2), rng(startup$first_ok_s)),
  sprintf("- a burst of 8 requests growing that pool from 1 to 8 ready workers: %s s (range %s)", fmt(med(startup$burst_s), 2), rng(startup$burst_s)),
  sprintf("- the same with `preload = TRUE` (workers forked from a template R process): first 200 OK %s s (range %s), burst 1 to 8 %s s (range %s)",
          fmt(med(startup$preload_first_ok_s), 2), rng(startup$preload_first_ok_s), fmt(med(startup$preload_burst_s), 2), rng(startup$preload_burst_s)),
  sprintf("- RSS of that R session right after the first 200 OK: %s MiB; a bare R with rJava's JVM started (`rJava::.jinit()`): %s MiB",
          fmt(med(startup$rss_started_mib), 0), fmt(med(startup$rss_bare_jvm_mib), 0)),
  sprintf("- the benchmark's valve R process (R + JVM + engine, %d workers): RSS %s MiB after start, %s MiB right after the last round, %s MiB %g s later (peak, VmHWM: %s MiB)",
          n_workers, fmt(rss_valve_start, 0), fmt(rss_valve_end, 0), fmt(rss_valve_idle, 0), idle_wait, fmt(hwm_valve, 0)),
  sprintf("- the valve-cli java process: RSS %s MiB after start, %s MiB right after the last round, %s MiB %g s later (peak %s MiB)",
          fmt(rss_cli_start, 0), fmt(rss_cli_end, 0), fmt(rss_cli_idle, 0), idle_wait, fmt(hwm_cli, 0)),
  sprintf("- Both engines run with valve's JVM flags (`%s`, from `inst/jvm-flags`).", paste(valve:::valve_java_parameters(), collapse = " ")),
  "", "## Failures", "",
  if (length(failures)) paste("-", failures) else "None.",
  "", "## Every measurement", "", all_lines
)
stamp <- format(Sys.time(), "%Y%m%d-%H%M%S")
writeLines(report, file.path(out_dir, paste0("bench-", stamp, ".md")))
utils::write.csv(results, file.path(out_dir, paste0("bench-", stamp, ".csv")), row.names = FALSE)
writeLines(report, file.path(bench_dir, "latest.md"))

# The plot: median req/s per scenario and setup with the min-max over rounds as whiskers (top),
# and the front's CPU per request (bottom).
colours <- c(valve = "#1b9e77", haproxy = "#d95f02", nginx = "#7570b3", `valve-cli` = "#66a61e", `plumber alone` = "grey70")
plot_setups <- names(colours)
grid <- function(column) {
  m <- matrix(NA_real_, length(plot_setups), length(scenario_names), dimnames = list(plot_setups, scenario_names))
  for (i in seq_len(nrow(summary))) if (summary$setup[i] %in% plot_setups) m[summary$setup[i], summary$scenario[i]] <- summary[[column]][i]
  m
}
short_names <- sub("mixed: /fast c=8 \\+ /sleep\\?ms=500 c=2", "mixed /fast c=8\n+ /sleep c=2", scenario_names)
png(file.path(bench_dir, "latest.png"), width = 1200, height = 1000, type = "cairo")
layout(matrix(1:2, 2), heights = c(3, 2))
par(mar = c(3, 5, 6, 1))
rps <- grid("rps")
rps_lo <- grid("rps_min")
rps_hi <- grid("rps_max")
floor_value <- 1
plot_rps <- rps
plot_rps[is.na(plot_rps) | plot_rps < floor_value] <- floor_value
at <- barplot(plot_rps, beside = TRUE, log = "y", col = colours, ylab = "requests per second (log scale)",
              names.arg = short_names, cex.names = 0.8, ylim = c(floor_value, max(rps_hi, plot_rps, na.rm = TRUE) * 1.5))
ok <- !is.na(rps_lo) & !is.na(rps_hi) & rps_lo > 0
suppressWarnings(arrows(at[ok], rps_lo[ok], at[ok], rps_hi[ok], angle = 90, code = 3, length = 0.02))
title(sprintf("valve vs HAProxy vs nginx, %d plumber workers, median of %d round(s), whiskers min-max (%s)",
              n_workers, rounds, format(Sys.Date())), line = 4)
legend("top", legend = plot_setups, fill = colours, bty = "n", horiz = TRUE, inset = c(0, -0.1), xpd = TRUE)
par(mar = c(6, 5, 3, 1))
cpu <- grid("front_ms")[c("valve", "haproxy", "nginx", "valve-cli"), , drop = FALSE]
cpu[is.na(cpu)] <- 0
barplot(cpu, beside = TRUE, col = colours[rownames(cpu)], ylab = "front CPU ms per request", ylim = c(0, max(cpu, 0.1) * 1.1),
        names.arg = short_names, cex.names = 0.8)
title("CPU of the front process per request (median over rounds; /proc/<pid>/stat utime + stime)", line = 1)
invisible(dev.off())

cat(report, sep = "\n")
log_line("done in %.1f min; %d failure(s)", elapsed_min, length(failures))
if (length(failures)) quit(status = 1)
