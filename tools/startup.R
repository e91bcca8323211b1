# Where valve's start-up time goes, in fresh R sessions (project issue #11, item 5).
#
#   JAVA_HOME=<jdk >= 21> R_LIBS=.lib Rscript tools/startup.R [repetitions]
#
# Each repetition runs two fresh Rscripts: one that times `library(valve)` and then each step of
# the first valve_start() (rJava's namespace, JVM start, Java version check, registering the
# jars, then the engine: Helidon listening, the first worker ready, as the engine logs them)
# and the first request; and one that times library(valve) + valve_start() + the first 200 OK
# as a user would see it. Prints medians (min-max) in seconds. Further arguments are JVM flags
# to set as java.parameters first (none: valve's own choice).
args <- commandArgs(trailingOnly = TRUE)
reps <- as.integer(args[1])
if (is.na(reps)) reps <- 5L
flags <- if (length(args) > 1) sprintf("options(java.parameters = %s)\n", deparse1(args[-1])) else ""
api <- tempfile(fileext = ".R")
writeLines(c("#* @get /fast", "function() list(ok = TRUE)"), api)

steps <- sprintf('
t <- function() proc.time()[["elapsed"]]
clock <- function(x) { p <- as.numeric(strsplit(x, ":")[[1]]); p[1] * 3600 + p[2] * 60 + p[3] }
now <- function() { x <- as.POSIXlt(Sys.time(), tz = "UTC"); x$hour * 3600 + x$min * 60 + x$sec }
t0 <- t(); library(valve); t1 <- t()
loadNamespace("rJava"); t2 <- t()
valve:::java_start(); t3 <- t()
valve:::check_java(); t4 <- t()
valve:::engine_init(); t5 <- t()
w0 <- now()
server <- valve_start(%s, port = 0, n_min = 1, n_max = 1); t6 <- t()
status <- curl::curl_fetch_memory(paste0(server$url, "/fast"))$status_code; t7 <- t()
logs <- valve_logs(server)
stamp <- function(pattern) clock(sub(" .*", "", grep(pattern, logs, value = TRUE)[1]))
listening <- stamp("listening on")
ready <- stamp("worker 1 ready")
stopifnot(status == 200L)
cat(sprintf("%%.4f", c(library = t1 - t0, rjava = t2 - t1, jvm = t3 - t2, check_java = t4 - t3,
  jpackage = t5 - t4, to_listening = listening - w0, to_worker_ready = ready - listening,
  valve_start = t6 - t5, first_request = t7 - t6, total = t7 - t0)), "\\n")
valve_stop(server, grace = 0)
', deparse(api))
user <- sprintf('
t0 <- proc.time()[["elapsed"]]
library(valve)
server <- valve_start(%s, port = 0, n_min = 1, n_max = 1)
status <- curl::curl_fetch_memory(paste0(server$url, "/fast"))$status_code
t1 <- proc.time()[["elapsed"]]
stopifnot(status == 200L)
cat(sprintf("%%.4f", t1 - t0), "\\n")
valve_stop(server, grace = 0)
', deparse(api))
lib_only <- 'x <- system.time(library(valve))[["elapsed"]]; cat(sprintf("%.4f", x), "\\n")'

rscript <- file.path(R.home("bin"), "Rscript")
run <- function(code) as.numeric(strsplit(trimws(tail(system2(rscript, c("-e", shQuote(code)), stdout = TRUE), 1)), " +")[[1]])
names_steps <- c("library", "rjava", "jvm", "check_java", "jpackage", "to_listening",
                 "to_worker_ready", "valve_start", "first_request", "total")
rows <- matrix(NA_real_, reps, length(names_steps), dimnames = list(NULL, names_steps))
user_total <- lib <- numeric(reps)
for (i in seq_len(reps)) {
  rows[i, ] <- run(paste0(flags, steps))
  user_total[i] <- run(paste0(flags, user))
  lib[i] <- run(lib_only)
}
fmt <- function(x) sprintf("%.3f (%.3f-%.3f)", median(x), min(x), max(x))
cat("steps of a first start, median (min-max) s, n =", reps, "\n")
for (n in names_steps) cat(sprintf("  %-16s %s\n", n, fmt(rows[, n])))
cat(sprintf("  %-16s %s\n", "library() alone", fmt(lib)))
cat(sprintf("  %-16s %s\n", "start to 200 OK", fmt(user_total)))
