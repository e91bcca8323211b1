# One valve worker: serves a plumber API on 127.0.0.1:$VALVE_PORT until told to stop or until
# the process that started it is gone. Started by the engine with Rscript; never sourced. The
# engine's side of this protocol is dev.valve.worker.WorkerProtocol.
#
# VALVE_MODE says what VALVE_PATH is:
#   file  a plumber file: plumber::plumb(file)
#   dir   a directory: plumber::plumb(dir =); its entrypoint.R either returns a router or, as
#         with Faucet, starts the server itself on the port in VALVE_PORT / FAUCET_PORT / PLUMBER_PORT
#   api   an RDS file holding a function, called to build the router
# VALVE_RUN_ARGS, if set, is an RDS file holding a list of arguments for pr_run().
#
# With VALVE_PRELOAD=1 this process is the template of preforked workers instead: it loads
# plumber and the API once, then reads "fork <id> <port>" lines on stdin, forks a worker for
# each (which serves on that port) and answers "valve-forked <id> <pid>" on stdout. It exits
# when its stdin closes, which happens when the engine is gone.
local({
  env <- function(name) {
    value <- Sys.getenv(name)
    if (!nzchar(value)) stop("valve worker: environment variable ", name, " is not set", call. = FALSE)
    value
  }
  preload <- identical(Sys.getenv("VALVE_PRELOAD"), "1")
  parent <- as.integer(env("VALVE_PARENT_PID"))
  mode <- env("VALVE_MODE")
  path <- env("VALVE_PATH")
  run_args_file <- Sys.getenv("VALVE_RUN_ARGS")
  run_args <- if (nzchar(run_args_file)) readRDS(run_args_file) else list()

  # The engine writes the run's secret on stdin rather than in the environment, where API code
  # could read it with Sys.getenv().
  stdin <- file("stdin", open = "r")
  secret <- readLines(stdin, n = 1L, warn = FALSE)
  if (!preload) close(stdin)
  if (length(secret) != 1L || !nzchar(secret)) stop("valve worker: no secret on standard input", call. = FALSE)

  # JVM shutdown hooks never run when R exits, and SIGKILL runs nothing: each worker checks
  # for the engine's process itself and leaves when it is gone. (Never in the template: later's
  # timer thread would not survive a fork.)
  watchdog <- function() {
    if (!tools::pskill(parent, 0L)) quit(save = "no", status = 0L)
    later::later(watchdog, 1)
  }
  if (!preload) later::later(watchdog, 1)

  # Only the engine may call this worker: another local user calling the port directly would
  # jump the queue. httpuv calls the router's call() for every request, so the check goes into
  # plumber's Plumber class before any user code runs; it then covers every router, including
  # one an entrypoint.R starts by itself. The header (and httpuv's copy in req$HEADERS) is
  # removed before plumber, and so the API code, sees the request.
  allowed <- function(req) {
    if (!identical(req$HTTP_X_VALVE_SECRET, secret)) return(FALSE)
    rm("HTTP_X_VALVE_SECRET", envir = req)
    if (!is.null(req$HEADERS)) req$HEADERS <- req$HEADERS[names(req$HEADERS) != "x-valve-secret"]
    TRUE
  }
  call <- plumber::Plumber$public_methods$call
  body(call) <- bquote({
    if (!.(allowed)(req)) {
      return(list(
        status = 403L,
        headers = list("Content-Type" = "text/plain"),
        body = "403 Forbidden: this port belongs to a valve worker; send requests to valve.\n"
      ))
    }
    .(body(call))
  })
  plumber::Plumber$set("public", "call", call, overwrite = TRUE)

  # As in an interactive session that ran library(plumber): API files often call plumber's
  # exports unqualified (%>%, as_attachment(), ...), at plumb time or in endpoints.
  suppressPackageStartupMessages(library(plumber))

  # Every convention for telling an API its port.
  tell_port <- function(port) {
    Sys.setenv(VALVE_PORT = port, FAUCET_PORT = port, PLUMBER_PORT = port)
    options(plumber.port = port)
  }
  if (!preload) tell_port(as.integer(env("VALVE_PORT")))

  api <- switch(mode,
    file = plumber::plumb(path),
    dir = plumber::plumb(dir = path),
    api = {
      router <- readRDS(path)()
      if (!inherits(router, "Plumber")) {
        stop("valve worker: `api` must return a plumber router (from plumber::pr()), not ",
             paste(class(router), collapse = "/"), call. = FALSE)
      }
      router
    },
    stop("valve worker: unknown VALVE_MODE ", mode, call. = FALSE)
  )

  serve <- function(port) {
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
  }

  if (!preload) {
    serve(as.integer(Sys.getenv("VALVE_PORT")))
  } else {
    # The template: each fork shares its loaded packages and API copy-on-write, and is reaped
    # by parallel's SIGCHLD handler when it exits. A fork outlives this process if it is killed.
    say <- function(...) {
      cat(..., "\n", sep = "")
      flush(stdout())
    }
    say("valve-template-ready")
    repeat {
      command <- readLines(stdin, n = 1L, warn = FALSE)
      if (length(command) == 0L) quit(save = "no", status = 0L)
      fields <- strsplit(command, " ", fixed = TRUE)[[1]]
      if (length(fields) != 3L || fields[[1]] != "fork") stop("valve template: unknown command ", command, call. = FALSE)
      worker <- parallel::mcparallel({
        later::later(watchdog, 1)
        Sys.setenv(VALVE_WORKER_ID = fields[[2]])
        tell_port(as.integer(fields[[3]]))
        serve(as.integer(fields[[3]]))
      }, detached = TRUE)
      say("valve-forked ", fields[[2]], " ", worker$pid)
    }
  }
})
