# Long chaos soak for valve: 16 clients on mixed endpoints while a random busy worker is killed
# every second. Reports status counts, and the engine's memory and open file descriptors before
# and after (the engine lives in this R process, so these are this process's numbers).
#
#   JAVA_HOME=<jdk >= 21> R_LIBS=.lib Rscript tools/soak.R [minutes]     (default 3)
#
# Exits 1 if any request got something other than 200 or 502, or more 502s than kills.
#
# The JVM's heap is capped so that growth would show as failure rather than as a lazily growing
# heap (by default the JVM may take a quarter of the machine's memory before collecting hard).
options(java.parameters = "-Xmx256m")
library(valve)
minutes <- as.numeric(commandArgs(trailingOnly = TRUE)[1])
if (is.na(minutes)) minutes <- 3

api <- tempfile(fileext = ".R")
writeLines(c(
  "#* @get /fast", "function() list(ok = TRUE)",
  "#* @get /sleep", "function(ms = 50) { Sys.sleep(as.numeric(ms) / 1000); list(pid = Sys.getpid()) }",
  "#* @post /echo", "function(req) list(bytes = length(req$bodyRaw))"
), api)

process_stats <- function() {
  status <- readLines("/proc/self/status")
  rss_kib <- as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", status, value = TRUE)))
  c(rss_mib = round(rss_kib / 1024, 1), open_fds = length(list.files("/proc/self/fd")))
}

server <- valve_start(api, port = 0, n_min = 4, n_max = 4)
on.exit(valve_stop(server, grace = 0))
body <- as.raw(rep(1:255, length.out = 200e3))
requests <- list(
  function() curl::new_handle(url = paste0(server$url, "/fast")),
  function() curl::new_handle(url = paste0(server$url, "/sleep?ms=100")),
  function() curl::handle_setopt(curl::new_handle(url = paste0(server$url, "/echo")),
                                 post = TRUE, postfields = body, postfieldsize = length(body))
)
# Warm up before the first sample so start-up allocations do not count as growth.
for (i in 1:200) curl::curl_fetch_memory(paste0(server$url, "/fast"))
gc()
before <- process_stats()

pool <- curl::new_pool(total_con = 32, host_con = 32)
statuses <- integer()
deadline <- Sys.time() + minutes * 60
fire <- function() {
  handle <- requests[[sample.int(length(requests), 1)]]()
  curl::handle_setopt(handle, timeout = 120)
  curl::multi_add(handle, pool = pool,
    done = function(r) { statuses <<- c(statuses, r$status_code); if (Sys.time() < deadline) fire() },
    fail = function(e) { statuses <<- c(statuses, NA_integer_); if (Sys.time() < deadline) fire() })
}
for (i in 1:16) fire()
kills <- 0
while (Sys.time() < deadline) {
  curl::multi_run(timeout = 1, pool = pool)
  busy <- valve_workers(server)
  busy <- busy$pid[busy$busy]
  if (length(busy) > 0) {
    tools::pskill(busy[sample.int(length(busy), 1)], tools::SIGKILL)
    kills <- kills + 1
  }
}
curl::multi_run(pool = pool)
# Client connections live in this process too: close them so only the engine's own are counted.
rm(pool)
gc()
Sys.sleep(3)
gc()
after <- process_stats()

counts <- table(statuses, useNA = "ifany")
cat(sprintf("soak: %.1f min, %d requests, %d kills\n", minutes, length(statuses), kills))
print(counts)
cat(sprintf("engine process: RSS %.1f -> %.1f MiB, open fds %d -> %d\n",
            before[["rss_mib"]], after[["rss_mib"]], before[["open_fds"]], after[["open_fds"]]))
cat(sprintf("workers at the end: %d\n", nrow(valve_workers(server))))
bad <- anyNA(statuses) || any(!statuses %in% c(200L, 502L)) || sum(statuses == 502L) > kills
if (bad) {
  cat("soak: FAILED\n")
  quit(status = 1)
}
cat("soak: ok\n")
