# What preload = TRUE gives (project issue #13): for each mode (preload off, then on) in one R
# session, on the API of bench/api.R's shape (a /sleep endpoint):
#   - spawn-to-ready of one worker started alone (the spare started when the only worker gets a
#     request), and the median over the 8 workers of the burst below, all starting at once
#     (the engine's "worker N ready in M ms" lines);
#   - a cold start with n_min = 0: the first request's time (with preload, once the template
#     is up);
#   - the 1 -> 8 burst: from n_min = 1, n_max = 8, 8 concurrent /sleep?ms=2000 requests; the
#     time until 8 workers are ready (from the log lines' timestamps);
#   - Valve's scenario: 100 x /sleep?ms=500, 5 at a time, n_max = 5, from n_min = 1: wall time;
#   - memory: PSS (smaps_rollup) of the template and workers with 1 and with 8 workers, and
#     (PSS with 8 - PSS with 1) / 7 per extra worker; idle RSS of one worker.
#
#   JAVA_HOME=<jdk >= 21> R_LIBS=.lib Rscript tools/preload.R [rounds]
#
# Not a test: numbers drift with the machine. Modes alternate within each round; medians over
# rounds are printed.
args <- commandArgs(trailingOnly = TRUE)
rounds <- if (length(args) > 0) as.integer(args[1]) else 3L
library(valve)
api <- tempfile(fileext = ".R")
writeLines(c(
  "#* @get /sleep",
  "function(ms = 500) { Sys.sleep(as.numeric(ms) / 1000); list(pid = Sys.getpid()) }"
), api)

parallel_get <- function(urls, concurrency) {
  pool <- curl::new_pool(total_con = concurrency, host_con = concurrency)
  statuses <- integer()
  queue <- urls
  fire <- function() {
    if (length(queue) == 0) return()
    url <- queue[[1]]
    queue <<- queue[-1]
    curl::curl_fetch_multi(url, pool = pool, handle = curl::new_handle(timeout = 120),
      done = function(r) { statuses <<- c(statuses, r$status_code); fire() },
      fail = function(e) { statuses <<- c(statuses, NA); fire() })
  }
  for (i in seq_len(concurrency)) fire()
  curl::multi_run(pool = pool)
  statuses
}

log_times <- function(lines) {
  ready <- grep("ready in [0-9]+ ms", lines, value = TRUE)
  clock <- vapply(strsplit(substr(ready, 1, 12), ":"), function(p) sum(as.numeric(p) * c(3600, 60, 1)), numeric(1))
  list(ms = as.numeric(sub(".*ready in ([0-9]+) ms.*", "\\1", ready)), at = clock)
}

pss_kib <- function(pids) {
  sum(vapply(pids, function(pid) {
    lines <- tryCatch(readLines(file.path("/proc", pid, "smaps_rollup"), warn = FALSE), error = function(e) character())
    line <- grep("^Pss:", lines, value = TRUE)
    if (length(line) == 0) 0 else as.numeric(gsub("[^0-9]", "", line))
  }, numeric(1)))
}

rss_kib <- function(pid) {
  line <- grep("^VmRSS:", readLines(file.path("/proc", pid, "status")), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line))
}

# The engine's R worker processes (template included) started by this R session.
engine_pids <- function() {
  pids <- suppressWarnings(as.integer(list.files("/proc", pattern = "^[0-9]+$")))
  me <- paste0("VALVE_PARENT_PID=", Sys.getpid())
  pids[vapply(pids, function(pid) {
    cmd <- tryCatch(readBin(file.path("/proc", pid, "cmdline"), "raw", 1e4), error = function(e) raw())
    env <- tryCatch(readBin(file.path("/proc", pid, "environ"), "raw", 1e5), error = function(e) raw())
    grepl("worker/worker.R", rawToChar(replace(cmd, cmd == 0, as.raw(32)))) &&
      grepl(me, rawToChar(replace(env, env == 0, as.raw(10))), fixed = TRUE)
  }, logical(1))]
}

measure <- function(preload) {
  # One worker starting alone: the spare.
  server <- valve_start(api, port = 0, n_min = 1, n_max = 2, preload = preload)
  valve_logs(server)
  stopifnot(parallel_get(paste0(server$url, "/sleep?ms=3000"), 1) == 200)
  alone <- log_times(valve_logs(server))$ms
  valve_stop(server, grace = 0)

  # A cold start from zero workers.
  server <- valve_start(api, port = 0, n_min = 0, n_max = 2, preload = preload)
  Sys.sleep(3)
  t0 <- Sys.time()
  stopifnot(parallel_get(paste0(server$url, "/sleep?ms=0"), 1) == 200)
  cold <- as.numeric(Sys.time() - t0, units = "secs")
  valve_stop(server, grace = 0)

  # The 1 -> 8 burst and spawn-to-ready.
  server <- valve_start(api, port = 0, n_min = 1, n_max = 8, preload = preload, max_age = 300)
  Sys.sleep(1)
  pss_one <- pss_kib(engine_pids())
  rss_one <- rss_kib(valve_workers(server)$pid[[1]])
  valve_logs(server)
  t0 <- Sys.time()
  statuses <- parallel_get(rep(paste0(server$url, "/sleep?ms=2000"), 8), 8)
  stopifnot(all(statuses == 200))
  burst_log <- log_times(valve_logs(server))
  start <- as.POSIXlt(t0, tz = "UTC")
  start <- start$hour * 3600 + start$min * 60 + start$sec
  burst <- max(burst_log$at) - start
  Sys.sleep(1)
  pss_eight <- pss_kib(engine_pids())
  valve_stop(server, grace = 0)

  # Valve's scenario.
  server <- valve_start(api, port = 0, n_min = 1, n_max = 5, preload = preload)
  t0 <- Sys.time()
  statuses <- parallel_get(rep(paste0(server$url, "/sleep?ms=500"), 100), 5)
  scenario <- as.numeric(Sys.time() - t0, units = "secs")
  stopifnot(all(statuses == 200))
  valve_stop(server, grace = 0)

  c(ready_alone_ms = alone[[1]], ready_p50_in_burst_ms = median(burst_log$ms), cold_first_request_s = cold,
    burst_1_to_8_s = burst, valve_scenario_s = scenario,
    pss_1_worker_mib = pss_one / 1024, pss_8_workers_mib = pss_eight / 1024,
    pss_per_extra_worker_mib = (pss_eight - pss_one) / 7 / 1024, rss_idle_worker_mib = rss_one / 1024)
}

results <- list(off = list(), on = list())
for (round in seq_len(rounds)) {
  modes <- if (round %% 2 == 1) c(FALSE, TRUE) else c(TRUE, FALSE)
  for (preload in modes) {
    key <- if (preload) "on" else "off"
    results[[key]][[round]] <- measure(preload)
    cat(sprintf("round %d preload %s: %s\n", round, key,
                paste(names(results[[key]][[round]]), round(results[[key]][[round]], 2), sep = " = ", collapse = ", ")))
  }
}
summary <- sapply(results, function(r) apply(do.call(rbind, r), 2, median))
print(round(summary, 2))
