# Memory and speed of valve's R session under different JVM flags (project issue #11, item 6).
# For each flag set and repetition: a fresh R starts valve (4 workers) with those flags; this
# script reads that R's RSS after start, pushes load through it with ab (20k GET /fast over 8
# connections, 50 POSTs of 1 MiB, 50 GETs of 1 MB), reads its RSS again at once and after 10 s
# idle, and prints one row per run and the medians (min-max) per flag set.
#
#   JAVA_HOME=<jdk >= 21> R_LIBS=.lib Rscript tools/jvm-flags.R [repetitions] [set ...]
#
# A flag set "valve" means no java.parameters at all, so valve's own choice applies.
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1) as.integer(args[1]) else 3L
sets <- list(
  valve = NULL,
  rjava_default = "-Xmx512m",
  xmx256 = "-Xmx256m",
  serial = c("-Xmx256m", "-XX:+UseSerialGC"),
  serial_c1 = c("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
  g1_periodic = c("-Xmx256m", "-XX:G1PeriodicGCInterval=2000"),
  g1_c1 = c("-Xmx256m", "-XX:TieredStopAtLevel=1"),
  serial_small = c("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC"),
  serial_small_c1 = c("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
  serial_c1_mn32 = c("-Xmx256m", "-Xmn32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
  serial_c1_mn16 = c("-Xmx256m", "-Xmn16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
  serial_mn32 = c("-Xmx256m", "-Xmn32m", "-XX:+UseSerialGC")
)
if (length(args) >= 2) sets <- sets[args[-1]]
stopifnot(nzchar(Sys.which("ab")))

dir <- tempfile("jvm-flags")
dir.create(dir)
api <- file.path(dir, "api.R")
writeLines(c(
  "#* @get /fast", "function() list(ok = TRUE)",
  "#* @post /echo", "function(req) list(bytes = length(req$bodyRaw))",
  "#* @serializer contentType list(type = 'application/octet-stream')",
  "#* @get /big", "function() as.raw(rep(1:255, length.out = 1e6))"
), api)
body <- file.path(dir, "body.bin")
writeBin(as.raw(rep(1:255, length.out = 1024^2)), body)

rss_mib <- function(pid) {
  status <- readLines(file.path("/proc", pid, "status"))
  as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", status, value = TRUE))) / 1024
}

ab <- function(...) {
  out <- suppressWarnings(system2("ab", c("-q", "-k", ...), stdout = TRUE, stderr = TRUE))
  num <- function(pattern) as.numeric(sub(pattern, "\\1", grep(pattern, out, value = TRUE)[1]))
  c(rps = num("^Requests per second:\\s+([0-9.]+).*"),
    p50 = num("^\\s+50%\\s+([0-9]+).*"), p99 = num("^\\s+99%\\s+([0-9]+).*"),
    failed = num("^Failed requests:\\s+([0-9]+).*"), non2xx = if (any(grepl("^Non-2xx", out))) num("^Non-2xx responses:\\s+([0-9]+).*") else 0)
}

run_one <- function(name, flags) {
  run_dir <- tempfile("run", tmpdir = dir)
  dir.create(run_dir)
  script <- sprintf(
    '%s
     t0 <- proc.time()[["elapsed"]]
     library(valve)
     server <- valve_start(%s, port = 0, n_min = 4, n_max = 4)
     writeLines(format(proc.time()[["elapsed"]] - t0), file.path(%s, "start"))
     writeLines(server$url, file.path(%s, "url"))
     while (!file.exists(file.path(%s, "stop"))) Sys.sleep(0.1)
     valve_stop(server, grace = 0)',
    if (is.null(flags)) "" else sprintf("options(java.parameters = %s)", deparse1(flags)),
    deparse(api), deparse(run_dir), deparse(run_dir), deparse(run_dir)
  )
  child <- processx::process$new(file.path(R.home("bin"), "Rscript"), c("-e", script),
                                 stdout = file.path(run_dir, "out"), stderr = "2>&1")
  on.exit({ file.create(file.path(run_dir, "stop")); Sys.sleep(1); child$kill_tree() })
  deadline <- Sys.time() + 120
  while (!file.exists(file.path(run_dir, "url"))) {
    if (!child$is_alive() || Sys.time() > deadline) stop("child failed: ", paste(readLines(file.path(run_dir, "out")), collapse = "\n"))
    Sys.sleep(0.05)
  }
  Sys.sleep(0.2)
  url <- readLines(file.path(run_dir, "url"))
  start_s <- as.numeric(readLines(file.path(run_dir, "start")))
  pid <- child$get_pid()
  rss_start <- rss_mib(pid)
  fast <- ab("-n", "20000", "-c", "8", paste0(url, "/fast"))
  post <- ab("-n", "50", "-c", "8", "-p", body, "-T", "application/octet-stream", paste0(url, "/echo"))
  big <- ab("-n", "50", "-c", "8", paste0(url, "/big"))
  rss_load <- rss_mib(pid)
  Sys.sleep(10)
  rss_idle <- rss_mib(pid)
  data.frame(set = name, start_s = start_s, rss_start = rss_start, rss_load = rss_load,
             rss_idle = rss_idle, fast_rps = fast[["rps"]], fast_p50 = fast[["p50"]],
             fast_p99 = fast[["p99"]], errors = sum(fast[c("failed", "non2xx")], post[c("failed", "non2xx")], big[c("failed", "non2xx")]))
}

rows <- list()
# Interleaved, so that a busy spell on the machine does not land on one flag set only.
for (rep in seq_len(reps)) {
  for (name in names(sets)) {
    row <- run_one(name, sets[[name]])
    print(row, row.names = FALSE)
    rows[[length(rows) + 1]] <- row
  }
}
results <- do.call(rbind, rows)
cols <- setdiff(names(results), "set")
summary <- do.call(rbind, lapply(split(results, results$set), function(d) {
  cells <- vapply(cols, function(col) {
    x <- d[[col]]
    sprintf("%.4g (%.4g-%.4g)", median(x), min(x), max(x))
  }, character(1))
  data.frame(set = d$set[1], t(cells), n = nrow(d))
}))
cat("\nmedian (min-max) per flag set; RSS in MiB, start in s, latency in ms\n")
print(summary, row.names = FALSE)
