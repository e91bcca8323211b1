# One valve worker: serves an API or a Shiny app on 127.0.0.1:$VALVE_PORT until told to stop or
# until the process that started it is gone. Started by the engine with Rscript; never sourced.
# The engine's side of this protocol is dev.valve.worker.WorkerProtocol.
#
# VALVE_MODE says what VALVE_PATH is:
#   file   a plumber file: plumber::plumb(file)
#   dir    a directory: plumber::plumb(dir =); its entrypoint.R either returns a router or, as
#          with Faucet, starts the server itself (plumber's, or its own httpuv server, e.g. one
#          with WebSockets) on the port in VALVE_PORT / FAUCET_PORT / PLUMBER_PORT
#   api    an RDS file holding a function, called to build the router
#   shiny  a Shiny app directory (app.R, or ui.R and server.R): shiny::runApp()
# VALVE_RUN_ARGS, if set, is an RDS file holding a list of arguments for pr_run() (not for shiny).
#
# With VALVE_PRELOAD=1 this process is the template of preforked workers instead: it loads
# plumber (or shiny) and the API once, then reads "fork <id> <port>" lines on stdin, forks a
# worker for each (which serves on that port) and answers "valve-forked <id> <pid>" on stdout.
# It exits when its stdin closes, which happens when the engine is gone.
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
  # jump the queue. The engine sends the secret in a header, which is removed before app code
  # sees the request (and httpuv's copy in req$HEADERS).
  forget_secret <- function(req, header) {
    variable <- paste0("HTTP_", toupper(gsub("-", "_", header, fixed = TRUE)))
    if (exists(variable, envir = req, inherits = FALSE)) rm(list = variable, envir = req)
    if (!is.null(req$HEADERS)) req$HEADERS <- req$HEADERS[names(req$HEADERS) != tolower(header)]
  }
  if (mode == "shiny") {
    # Shiny's own guard, the one Shiny Server and Connect use: it checks the Shiny-Shared-Secret
    # header on HTTP requests, on static files (in httpuv) and on the WebSocket handshake.
    options(shiny.sharedSecret = secret)
  } else {
    # Every server the worker starts goes through httpuv::startServer(): plumber's, and one an
    # entrypoint.R starts with httpuv itself (which plumber never sees, e.g. for WebSockets).
    # The guard wraps the app given to it, in httpuv's namespace before plumber or any app code
    # loads (packages that import httpuv copy its functions when they load). httpuv calls
    # onHeaders for WebSocket handshakes too and sends its 403, but still calls onWSOpen, and
    # hands onWSOpen a request with every header again: onWSOpen checks and removes it as well.
    header <- "X-Valve-Secret"
    allowed <- function(req) {
      if (!identical(req$HTTP_X_VALVE_SECRET, secret)) return(FALSE)
      forget_secret(req, header)
      TRUE
    }
    forbidden <- list(
      status = 403L,
      headers = list("Content-Type" = "text/plain"),
      body = "403 Forbidden: this port belongs to a valve worker; send requests to valve.\n"
    )
    guard <- function(app) {
      static_options <- app$staticPathOptions
      if (is.null(static_options)) static_options <- httpuv::staticPathOptions()
      # Static files never reach R: httpuv checks the header itself.
      static_options$validation <- sprintf('"%s" == "%s"', header, secret)
      list(
        call = app$call,
        onHeaders = function(req) {
          if (!allowed(req)) return(forbidden)
          if (is.function(app$onHeaders)) app$onHeaders(req)
        },
        onWSOpen = function(ws) {
          if (!allowed(ws$request)) return(ws$close())
          if (is.function(app$onWSOpen)) app$onWSOpen(ws)
        },
        staticPaths = app$staticPaths,
        staticPathOptions = static_options
      )
    }
    httpuv <- asNamespace("httpuv")
    start_server <- httpuv$startServer
    guarded <- start_server
    body(guarded) <- bquote({
      app <- .(guard)(app)
      .(body(start_server))
    })
    unlockBinding("startServer", httpuv)
    assign("startServer", guarded, envir = httpuv)
    lockBinding("startServer", httpuv)
  }

  # As in an interactive session that ran library(plumber) (or library(shiny)): API files often
  # call plumber's exports unqualified (%>%, as_attachment(), ...), at plumb time or in
  # endpoints, and ui.R / server.R apps call shiny's.
  if (mode == "shiny") {
    suppressPackageStartupMessages(library(shiny))
  } else {
    suppressPackageStartupMessages(library(plumber))
  }

  # Every convention for telling an API its port.
  tell_port <- function(port) {
    Sys.setenv(VALVE_PORT = port, FAUCET_PORT = port, PLUMBER_PORT = port)
    options(plumber.port = port)
  }
  if (!preload) tell_port(as.integer(env("VALVE_PORT")))

  # A Shiny app whose sessions valve can move: each session allows the browser to reconnect
  # before the app's server function runs, so when its worker dies Shiny's JavaScript opens a
  # new WebSocket through valve (which places it on a live worker) and sends its inputs again.
  shiny_app <- function(path) {
    app <- shiny::shinyAppDir(path)
    http <- app$httpHandler
    app$httpHandler <- function(req) {
      forget_secret(req, "Shiny-Shared-Secret")
      http(req)
    }
    prepare <- function(session) {
      forget_secret(session$request, "Shiny-Shared-Secret")
      session$allowReconnect("force")
    }
    server_source <- app$serverFuncSource
    app$serverFuncSource <- function() {
      server <- server_source()
      # Shiny tells that server.R changed by comparing the server functions' bodies: the app's
      # own function is inlined in the wrapper's body so that a change still shows. It gets
      # the arguments Shiny would give it (session and clientData only if it takes them).
      wrapper <- function(input, output, session) NULL
      body(wrapper) <- bquote({
        .(prepare)(session)
        server <- .(server)
        args <- list(input = input, output = output)
        params <- names(formals(server))
        if ("clientData" %in% params) args$clientData <- session$clientData
        if ("session" %in% params) args$session <- session
        do.call(server, args)
      })
      wrapper
    }
    app
  }

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
    shiny = shiny_app(path),
    stop("valve worker: unknown VALVE_MODE ", mode, call. = FALSE)
  )

  run <- function(port) {
    if (mode == "shiny") {
      return(shiny::runApp(api, port = port, host = "127.0.0.1", launch.browser = FALSE, quiet = TRUE))
    }
    args <- utils::modifyList(list(docs = TRUE), run_args)
    args$host <- "127.0.0.1"
    args$port <- port
    args$quiet <- TRUE
    do.call(api$run, args)
  }

  serve <- function(port) {
    tryCatch(
      run(port),
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
