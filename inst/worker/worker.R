# One valve worker: serves a plumber API on 127.0.0.1:$VALVE_PORT until told to stop or until
# the process that started it is gone. Started by the engine with Rscript; never sourced.
local({
  env <- function(name) {
    value <- Sys.getenv(name)
    if (!nzchar(value)) stop("valve worker: environment variable ", name, " is not set", call. = FALSE)
    value
  }
  port <- as.integer(env("VALVE_PORT"))
  parent <- as.integer(env("VALVE_PARENT_PID"))
  file <- env("VALVE_PLUMBER_FILE")
  run_args_file <- Sys.getenv("VALVE_RUN_ARGS")
  run_args <- if (nzchar(run_args_file)) readRDS(run_args_file) else list()

  # JVM shutdown hooks never run when R exits, and SIGKILL runs nothing: each worker checks
  # for the engine's process itself and leaves when it is gone.
  watchdog <- function() {
    if (!tools::pskill(parent, 0L)) quit(save = "no", status = 0L)
    later::later(watchdog, 1)
  }
  later::later(watchdog, 1)

  api <- plumber::plumb(file)
  args <- utils::modifyList(list(docs = TRUE), run_args)
  args$host <- "127.0.0.1"
  args$port <- port
  args$quiet <- TRUE
  tryCatch(
    do.call(api$run, args),
    error = function(e) {
      message(conditionMessage(e))
      # The port was taken between the engine's probe and our bind: ask for another.
      if (grepl("Failed to create server", conditionMessage(e), fixed = TRUE)) quit(save = "no", status = 75L)
      quit(save = "no", status = 1L)
    }
  )
})
