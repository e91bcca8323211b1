# Runs valve for the benchmark in its own R process:
#   Rscript serve-valve.R API N_MIN N_MAX URL_FILE [NAME=VALUE ...]
# NAME=VALUE pairs are further valve_start() arguments, VALUE an R expression (preload=TRUE).
# Writes the URL to URL_FILE once serving; stops valve on SIGINT.
args <- commandArgs(trailingOnly = TRUE)
# JVM options for profiling runs, e.g. VALVE_BENCH_JAVA_OPTS="-XX:StartFlightRecording=filename=/tmp/valve.jfr".
if (nzchar(Sys.getenv("VALVE_BENCH_JAVA_OPTS"))) options(java.parameters = strsplit(Sys.getenv("VALVE_BENCH_JAVA_OPTS"), " ")[[1]])
extra <- args[-(1:4)]
extra <- stats::setNames(lapply(sub("^[^=]*=", "", extra), function(value) eval(str2lang(value))), sub("=.*", "", extra))
server <- do.call(valve::valve_start, c(list(args[[1]], port = 0, n_min = as.integer(args[[2]]),
                                             n_max = as.integer(args[[3]]), max_age = 3600, docs = FALSE), extra))
writeLines(server$url, args[[4]])
tryCatch(repeat Sys.sleep(1), interrupt = function(e) NULL)
valve::valve_stop(server, grace = 0)
