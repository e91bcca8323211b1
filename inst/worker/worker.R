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

  # The engine writes the run's secret on stdin rather than in the environment, where API code
  # could read it with Sys.getenv().
  stdin <- file("stdin")
  secret <- readLines(stdin, n = 1L, warn = FALSE)
  close(stdin)
  if (length(secret) != 1L || !nzchar(secret)) stop("valve worker: no secret on standard input", call. = FALSE)

  # JVM shutdown hooks never run when R exits, and SIGKILL runs nothing: each worker checks
  # for the engine's process itself and leaves when it is gone.
  watchdog <- function() {
    if (!tools::pskill(parent, 0L)) quit(save = "no", status = 0L)
    later::later(watchdog, 1)
  }
  later::later(watchdog, 1)

  api <- plumber::plumb(file)

  # Only the engine may call this worker: another local user calling the port directly would
  # jump the queue. httpuv calls api$call() for every request, so the check wraps it; the
  # header (and httpuv's copy in req$HEADERS) is removed before plumber, and so the API code, sees
  # the request.
  forward <- api$call
  guarded <- function(req) {
    if (!identical(req$HTTP_X_VALVE_SECRET, secret)) {
      return(list(
        status = 403L,
        headers = list("Content-Type" = "text/plain"),
        body = "403 Forbidden: this port belongs to a valve worker; send requests to valve.\n"
      ))
    }
    rm("HTTP_X_VALVE_SECRET", envir = req)
    if (!is.null(req$HEADERS)) req$HEADERS <- req$HEADERS[names(req$HEADERS) != "x-valve-secret"]
    forward(req)
  }
  unlockBinding("call", api)
  assign("call", guarded, envir = api)
  lockBinding("call", api)

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
