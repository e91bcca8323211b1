# valve benchmark: valve, HAProxy and nginx in front of the same number of plumber workers, and
# one plumber process alone, measured side by side in one run with wrk. Run with `make bench`.
#
# Environment: BENCH_SECONDS (per measurement, default 5), BENCH_WORKERS (default 4),
# BENCH_OUT (folder for results, default bench/results). Every process started here is stopped
# here, by PID, also on error.

library(processx)

seconds <- as.numeric(Sys.getenv("BENCH_SECONDS", "5"))
n_workers <- as.integer(Sys.getenv("BENCH_WORKERS", "4"))
bench_dir <- normalizePath(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))))
out_dir <- Sys.getenv("BENCH_OUT", file.path(bench_dir, "results"))
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
api <- file.path(bench_dir, "api.R")
rscript <- file.path(R.home("bin"), "Rscript")
work <- tempfile("valve-bench-")
dir.create(work)

processes <- list()
track <- function(p) {
  processes[[length(processes) + 1]] <<- p
  p
}
stop_all <- function() {
  for (p in rev(processes)) {
    if (p$is_alive()) {
      p$interrupt()
      if (!isTRUE(p$wait(5000)$is_alive())) next
      p$kill()
    }
  }
}
on.exit(stop_all(), add = TRUE)

free_port <- function() httpuv::randomPort(min = 20000, max = 40000)

wait_http <- function(url, p, timeout = 60) {
  deadline <- Sys.time() + timeout
  repeat {
    ok <- tryCatch(curl::curl_fetch_memory(url)$status_code < 500, error = function(e) FALSE)
    if (ok) return(invisible(TRUE))
    if (!p$is_alive()) stop("the process for ", url, " exited with status ", p$get_exit_status())
    if (Sys.time() > deadline) stop("nothing answers at ", url)
    Sys.sleep(0.05)
  }
}

# --- the targets -------------------------------------------------------------------------------

start_plumber <- function(port) {
  p <- track(process$new(rscript, c("-e", sprintf(
    "plumber::pr_run(plumber::plumb(%s), host = '127.0.0.1', port = %d, docs = FALSE, quiet = TRUE)",
    deparse(api), port
  )), stdout = NULL, stderr = NULL))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p)
  port
}

start_haproxy <- function(worker_ports) {
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
  p <- track(process$new("haproxy", c("-db", "-f", config), stdout = NULL, stderr = file.path(work, "haproxy.log")))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p)
  port
}

start_nginx <- function(worker_ports) {
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
  p <- track(process$new("nginx", c("-p", prefix, "-c", config, "-g", "daemon off;"), stdout = NULL,
                         stderr = file.path(work, "nginx.log")))
  wait_http(sprintf("http://127.0.0.1:%d/fast", port), p)
  port
}

start_valve <- function(n_min, n_max) {
  url_file <- tempfile(tmpdir = work)
  p <- track(process$new(rscript, c(file.path(bench_dir, "serve-valve.R"), api, n_min, n_max, url_file),
                         stdout = NULL, stderr = file.path(work, "valve.log")))
  deadline <- Sys.time() + 120
  while (!file.exists(url_file) || length(readLines(url_file)) == 0) {
    if (!p$is_alive()) stop("valve did not start: ", paste(readLines(file.path(work, "valve.log")), collapse = "\n"))
    if (Sys.time() > deadline) stop("valve did not start in time")
    Sys.sleep(0.05)
  }
  url <- readLines(url_file)
  wait_http(paste0(url, "/fast"), p)
  list(process = p, port = as.integer(sub(".*:", "", url)), url = url)
}

# --- measuring ---------------------------------------------------------------------------------

parse_ms <- function(text) {
  if (length(text) == 0) return(NA_real_)
  value <- as.numeric(sub("[a-z]+$", "", text))
  unit <- sub("^[0-9.]+", "", text)
  value * c(us = 1e-3, ms = 1, s = 1e3, m = 6e4)[[unit]]
}

wrk <- function(port, path, connections, script = NULL, duration = seconds, headers = character()) {
  args <- c("-t", min(2, connections), "-c", connections, "-d", paste0(duration, "s"),
            "--timeout", "30s", "--latency")
  for (header in headers) args <- c(args, "-H", header)
  if (!is.null(script)) args <- c(args, "-s", script)
  out <- run("wrk", c(args, sprintf("http://127.0.0.1:%d%s", port, path)), error_on_status = FALSE)$stdout
  line <- function(pattern) regmatches(out, regexpr(pattern, out))
  rps <- as.numeric(c(sub(".*:\\s*", "", line("Requests/sec:\\s*[0-9.]+")), NA))[1]
  p50 <- parse_ms(sub("^\\s*50%\\s*", "", line("50%\\s*[0-9.]+[a-z]+")))
  p99 <- parse_ms(sub("^\\s*99%\\s*", "", line("99%\\s*[0-9.]+[a-z]+")))
  socket <- line("Socket errors:[^\n]*")
  socket_errors <- if (length(socket)) sum(as.numeric(regmatches(socket, gregexpr("[0-9]+", socket))[[1]])) else 0
  non2xx <- line("Non-2xx or 3xx responses: [0-9]+")
  non2xx <- if (length(non2xx)) as.numeric(sub(".*: ", "", non2xx)) else 0
  data.frame(rps = rps, p50_ms = p50, p99_ms = p99, errors = socket_errors + non2xx)
}

scenarios <- list(
  list(name = "/fast c=1", path = "/fast", c = 1),
  list(name = "/fast c=8", path = "/fast", c = 8),
  list(name = "/fast c=32", path = "/fast", c = 32),
  list(name = "/sleep?ms=100 c=8", path = "/sleep?ms=100", c = 8),
  list(name = "/sleep?ms=100 c=32", path = "/sleep?ms=100", c = 32),
  list(name = "/cpu c=8", path = "/cpu", c = 8),
  list(name = "POST 1 MiB c=8", path = "/echo", c = 8, script = file.path(bench_dir, "post.lua")),
  list(name = "GET 1 MB c=8", path = "/bytes?n=1000000", c = 8),
  list(name = "mixed: /fast c=8 + /sleep?ms=500 c=2", path = "/fast", c = 8, mixed = TRUE)
)

measure <- function(scenario, port) {
  if (isTRUE(scenario$mixed)) {
    slow <- process$new("wrk", c("-t", "1", "-c", "2", "-d", paste0(seconds + 2, "s"), "--timeout", "30s",
                                 sprintf("http://127.0.0.1:%d/sleep?ms=500", port)), stdout = NULL)
    on.exit(if (slow$is_alive()) slow$kill())
    Sys.sleep(1)
  }
  wrk(port, scenario$path, scenario$c, scenario$script)
}

# --- the run -----------------------------------------------------------------------------------

cat(sprintf("valve bench: %d workers, %g s per measurement, %s\n", n_workers, seconds, format(Sys.time())))
worker_ports <- vapply(seq_len(n_workers), function(i) start_plumber(free_port()), numeric(1))
alone_port <- start_plumber(free_port())
valve <- start_valve(n_workers, n_workers)
targets <- c(
  valve = valve$port,
  haproxy = start_haproxy(worker_ports),
  nginx = start_nginx(worker_ports),
  `plumber alone` = alone_port
)
# Warm-up: every request shape, so the JVM has compiled its hot paths before anything counts.
rss_mib <- function(pid) {
  status <- readLines(file.path("/proc", pid, "status"))
  as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", status, value = TRUE))) / 1024
}
rss_start <- rss_mib(valve$process$get_pid())
for (name in names(targets)) {
  wrk(targets[[name]], "/fast", 8, duration = 3)
  wrk(targets[[name]], "/echo", 4, script = file.path(bench_dir, "post.lua"), duration = 2)
  wrk(targets[[name]], "/bytes?n=1000000", 4, duration = 2)
}

rows <- list()
for (scenario in scenarios) {
  for (name in names(targets)) {
    result <- measure(scenario, targets[[name]])
    rows[[length(rows) + 1]] <- cbind(scenario = scenario$name, target = name, result)
    cat(sprintf("%-40s %-14s %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %d\n",
                scenario$name, name, result$rps, result$p50_ms, result$p99_ms, as.integer(result$errors)))
  }
}
# The floor for one request through any proxy: a fresh connection straight to one worker.
direct <- wrk(worker_ports[[1]], "/fast", 1, headers = "Connection: close")
rows[[length(rows) + 1]] <- cbind(scenario = "/fast c=1", target = "worker direct, Connection: close", direct)
results <- do.call(rbind, rows)

# Engine memory: the valve process (R + JVM) at start, under load, after every scenario, and a
# bare R with rJava's JVM for comparison.
rss_after <- rss_mib(valve$process$get_pid())
loader <- process$new("wrk", c("-t", "2", "-c", "32", "-d", "4s", sprintf("http://127.0.0.1:%d/fast", valve$port)), stdout = NULL)
Sys.sleep(3)
rss_load <- rss_mib(valve$process$get_pid())
loader$wait()
bare <- process$new(rscript, c("-e", "rJava::.jinit(); Sys.sleep(3)"), stdout = NULL)
Sys.sleep(2)
rss_bare <- rss_mib(bare$get_pid())
bare$wait()
stop_all()
processes <- list()

# Valve's published benchmark: 100 requests to /sleep?ms=500, 5 at a time, n_max = 5.
hundred <- function(n_min) {
  v <- start_valve(n_min, 5)
  on.exit({ v$process$interrupt(); v$process$wait(5000); if (v$process$is_alive()) v$process$kill() })
  pool <- curl::new_pool(total_con = 5, host_con = 5)
  statuses <- integer()
  started <- Sys.time()
  for (i in 1:100) {
    curl::curl_fetch_multi(paste0(v$url, "/sleep?ms=500"), pool = pool,
      done = function(r) statuses <<- c(statuses, r$status_code), fail = function(e) statuses <<- c(statuses, NA))
  }
  curl::multi_run(pool = pool)
  elapsed <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  if (!all(statuses == 200L)) warning("not every request succeeded: ", paste(table(statuses), collapse = " "))
  elapsed
}
valve_n5 <- hundred(5)
valve_n1 <- hundred(1)

# Start-up and scaling, in a fresh R process so the JVM's first start counts.
startup_script <- sprintf('
  t0 <- Sys.time()
  s <- valve::valve_start(%s, port = 0, n_min = 1, n_max = 8, max_age = 3600)
  repeat if (tryCatch(curl::curl_fetch_memory(paste0(s$url, "/fast"))$status_code == 200, error = function(e) FALSE)) break
  first <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  pool <- curl::new_pool(total_con = 8, host_con = 8)
  for (i in 1:8) curl::curl_fetch_multi(paste0(s$url, "/sleep?ms=3000"), pool = pool, done = function(r) NULL, fail = function(e) NULL)
  t1 <- Sys.time()
  invisible(curl::multi_run(timeout = 0.05, pool = pool))
  while (nrow(valve::valve_workers(s)) < 8) curl::multi_run(timeout = 0.01, pool = pool)
  burst <- as.numeric(difftime(Sys.time(), t1, units = "secs"))
  invisible(curl::multi_run(pool = pool))
  valve::valve_stop(s, grace = 0)
  cat("TIMING", first, burst, "\\n")', deparse(api))
timing_line <- grep("^TIMING ", strsplit(run(rscript, c("-e", startup_script))$stdout, "\n")[[1]], value = TRUE)
timing <- as.numeric(strsplit(trimws(timing_line), " ")[[1]][-1])

# --- the report --------------------------------------------------------------------------------

fmt <- function(x, digits = 1) formatC(x, format = "f", digits = digits)
table_lines <- c(
  "| scenario | target | req/s | p50 ms | p99 ms | errors |",
  "|---|---|---:|---:|---:|---:|",
  sprintf("| %s | %s | %s | %s | %s | %d |", results$scenario, results$target, fmt(results$rps),
          fmt(results$p50_ms, 2), fmt(results$p99_ms, 2), as.integer(results$errors))
)
ratio_lines <- c("| scenario | valve req/s | best alternative | ratio | valve p99 / HAProxy p99 |", "|---|---:|---|---:|---:|")
for (scenario in unique(results$scenario)) {
  here <- results[results$scenario == scenario, ]
  v <- here[here$target == "valve", ]
  alternatives <- here[here$target %in% c("haproxy", "nginx"), ]
  best <- alternatives[which.max(alternatives$rps), ]
  h <- here[here$target == "haproxy", ]
  ratio_lines <- c(ratio_lines, sprintf("| %s | %s | %s %s | %.2fx | %.2f |", scenario, fmt(v$rps),
                                        best$target, fmt(best$rps), v$rps / best$rps, v$p99_ms / h$p99_ms))
}
v1 <- results[results$scenario == "/fast c=1" & results$target == "valve", ]
latency_line <- sprintf("/fast at 1 connection: valve p50 %.2f ms, a direct `Connection: close` request to one worker p50 %.2f ms: %+.2f ms.",
                        v1$p50_ms, direct$p50_ms, v1$p50_ms - direct$p50_ms)
machine <- sprintf("%d cores, %s, R %s, %s", parallel::detectCores(),
                   sub("^PRETTY_NAME=\"?([^\"]*)\"?$", "\\1", grep("^PRETTY_NAME", readLines("/etc/os-release"), value = TRUE)),
                   getRversion(), trimws(system2("haproxy", "-v", stdout = TRUE)[1]))
report <- c(
  sprintf("# valve benchmark, %s", format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")),
  "",
  sprintf("%d plumber workers per proxy, wrk for %g s per measurement, all on one machine (%s); nginx %s.",
          n_workers, seconds, machine, sub("^nginx version: ", "", system2("nginx", "-v", stderr = TRUE, stdout = TRUE)[1])),
  "HAProxy: leastconn, `maxconn 1` per worker, queue in HAProxy, no upstream keep-alive.",
  "nginx: least_conn, no upstream keep-alive. valve: `n_min = n_max = workers`.",
  "", "## valve against the best alternative", "", ratio_lines, "", latency_line,
  "", "## Valve's published scenario (100 requests to /sleep?ms=500, 5 at a time, n_max = 5)", "",
  "| valve | total time | Valve (Rust) reported | limit |", "|---|---:|---:|---:|",
  sprintf("| n_min = 5 | %.2f s | 10.2 s | 10.0 s |", valve_n5),
  sprintf("| n_min = 1 (autoscaling from cold) | %.2f s | 10.2 s | 10.0 s |", valve_n1),
  "", "## Start-up, scaling and memory", "",
  sprintf("- `valve_start()` to the first 200 OK, in a fresh R session: %.2f s", timing[1]),
  sprintf("- a burst of 8 requests growing the pool from 1 to 8 ready workers: %.2f s", timing[2]),
  sprintf("- the valve process (R + JVM + engine), RSS: %.0f MiB after start, %.0f MiB after every scenario (1 MiB bodies included), %.0f MiB under load (/fast, 32 connections); a bare R with rJava's JVM started: %.0f MiB. The JVM's heap grows lazily up to its default ceiling (a quarter of RAM); `options(java.parameters = \"-Xmx256m\")` bounds it (tools/soak.R runs that way).", rss_start, rss_after, rss_load, rss_bare),
  "", "## All measurements", "", table_lines
)
stamp <- format(Sys.time(), "%Y%m%d-%H%M%S")
writeLines(report, file.path(out_dir, paste0("bench-", stamp, ".md")))
writeLines(report, file.path(bench_dir, "latest.md"))

png(file.path(bench_dir, "latest.png"), width = 1100, height = 760, type = "cairo")
par(mar = c(18, 5, 5, 1))
wide <- tapply(results$rps, list(results$target, factor(results$scenario, levels = unique(results$scenario))), identity)
wide <- wide[c("valve", "haproxy", "nginx", "plumber alone"), ]
wide[is.na(wide)] <- 1
barplot(wide, beside = TRUE, las = 2, log = "y", col = c("#1b9e77", "#d95f02", "#7570b3", "grey70"),
        ylab = "requests per second (log scale)", cex.names = 0.75)
title(sprintf("valve vs HAProxy vs nginx, %d plumber workers (%s)", n_workers, format(Sys.Date())), line = 3)
legend("top", legend = rownames(wide), fill = c("#1b9e77", "#d95f02", "#7570b3", "grey70"), bty = "n",
       horiz = TRUE, inset = c(0, -0.08), xpd = TRUE)
invisible(dev.off())

cat(report, sep = "\n")
