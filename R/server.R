#' Start valve in the background
#'
#' Starts the valve engine inside this R session and returns at once with a handle, once the
#' first `n_min` workers answer HTTP. Clients connect to one port; each request goes to an R
#' worker process that runs `plumber_file`. A worker handles one request at a time; requests
#' that find every worker busy wait in a first-in, first-out queue, and more workers are started
#' (up to `n_max`) while requests wait. Workers idle for longer than `max_age` seconds are
#' stopped, down to `n_min`.
#'
#' The engine stops when [valve_stop()] is called, when the handle is garbage collected, and
#' when the R session ends. Workers also watch the R process and exit within about a second if
#' it dies.
#'
#' @param plumber_file Path of the plumber API file each worker runs with [plumber::plumb()].
#' @param host Address to listen on. The default, `"127.0.0.1"`, accepts connections from this
#'   machine only; `"0.0.0.0"` listens on every interface.
#' @param port Port to listen on; `0` picks a free one (see the handle's `url`).
#' @param n_min Workers started at once and kept running even when idle. `0` scales to zero:
#'   no worker runs until the first request, which waits for one to start (about half a
#'   second), and idle workers are stopped down to none. A broken API is then found by the
#'   first request (answered `503` with the worker's error) rather than by `valve_start()`.
#' @param n_max Most workers running at once. A worker on its way out (recycled, or replaced
#'   by [valve_reload()]) is not counted while it finishes its last request.
#' @param check_unused Seconds between checks for idle workers.
#' @param max_age Seconds a worker may stay idle before it is stopped (never below `n_min`).
#' @param queue_max Most requests waiting for a worker; more are answered `503` with a
#'   `Retry-After` header.
#' @param queue_timeout Seconds a request may wait for a worker before it is answered `503`.
#' @param request_timeout Seconds a worker may stay silent on a request before the client gets
#'   `504` and the worker is replaced.
#' @param startup_timeout Seconds a new worker may take to answer HTTP.
#' @param max_body_size Largest request body in bytes; larger ones are answered `413`. Bodies
#'   are held in memory up to 1 MiB and in a temporary file beyond.
#' @param client_timeout Seconds a client connection may stay silent (idle between requests,
#'   or stalled while sending its headers or body) before valve closes it.
#' @param max_requests Requests after which a worker is replaced by a fresh one (`0`: never),
#'   as gunicorn's `max_requests`: R processes grow and do not give memory back. The worker
#'   leaves after the response to its last request; when requests would otherwise wait for it,
#'   its replacement starts while it serves that request.
#' @param max_requests_jitter Up to this many more requests, drawn anew for each worker, so that
#'   workers started together are not replaced together. Needs `max_requests`.
#' @param max_worker_memory MiB of resident memory (RSS) above which a worker is replaced after
#'   a request (`0`: never). Read from `/proc` after each response (Linux only).
#' @param watch For development: `TRUE` reloads the workers, as [valve_reload()] does, when a
#'   `.R` file in the API's directory (the plumber file's, `dir`, or for `api` the working
#'   directory; not subdirectories) is created, changed or deleted. The log names the file.
#' @param preload `TRUE` loads plumber and the API once, in a template R process, and forks
#'   every worker from it: a worker is then ready in tens of milliseconds instead of about half
#'   a second, and shares the template's memory copy-on-write. Workers stay as isolated as
#'   without it (own port, the secret, the watchdog, stopped by PID). Do not use it for an API
#'   that opens database connections, threads or other handles when it is loaded: every fork
#'   would share them. A `dir` whose `entrypoint.R` starts the server itself cannot be
#'   preloaded. Workers' output is logged under `[preload]`. See the README, "Preforked workers".
#' @param admin_port Port of the admin listener, on the same `host`: `GET /metrics`
#'   (Prometheus), `/healthz`, `/readyz`, `/status` (a live HTML page) and `/status.json`. It is
#'   a separate port, never reachable through `port`, and its requests never wait in the queue
#'   or cost a worker. `NULL` (the default) has none; `0` picks a free port (see the handle's
#'   `admin_url`).
#' @param access_log Whether every request gets a line in the log ([valve_logs()], the
#'   [valve_run()] console): the Combined Log Format followed by the time in valve and the time
#'   queued (milliseconds), the worker's name and the request id. See "Watching valve" in the
#'   README.
#' @param dir Instead of `plumber_file`: a directory served the way [plumber::plumb()] serves
#'   `dir`. If it holds an `entrypoint.R`, each worker runs it with the worker's port in the
#'   environment variables `VALVE_PORT`, `FAUCET_PORT` and `PLUMBER_PORT` and in
#'   `options(plumber.port)`: the script may start the server itself on that port (Faucet's
#'   convention) or return a router, which valve then runs. Otherwise its `plumber.R` is used.
#'   A directory with neither but with an `app.R` (or a `ui.R` and a `server.R`) is a Shiny
#'   app: see `type`.
#' @param type What `dir` holds: `"auto"` decides from its files (plumber's win), `"plumber"`
#'   insists on a plumber API, `"shiny"` on a Shiny app. A Shiny app's workers each run
#'   [shiny::runApp()] and serve many sessions: a new session goes to the worker with the fewest,
#'   a cookie keeps all of a session's requests and its WebSocket on that worker, and a worker
#'   takes at most `max_sessions`. More sessions start more workers, up to `n_max`; beyond that
#'   new sessions wait in the queue (`queue_max`, `queue_timeout`). A worker without a session
#'   for `max_age` seconds stops, down to `n_min`. When a session's worker dies, its browser
#'   reconnects and the session is placed on a live worker (a new Shiny session: inputs are sent
#'   again, server-side state is not kept). See "Shiny apps" in the README.
#' @param max_sessions Shiny apps: sessions (browser tabs) one worker serves at most.
#' @param api Instead of `plumber_file`: a function that builds and returns a plumber router,
#'   such as `function() plumber::pr() |> plumber::pr_get("/", function() "hi")`. Each worker
#'   calls it. It runs in a fresh R process, so it must load what it needs itself.
#' @param upstream Instead of local workers (service mode): `"http://name:port"` of a service
#'   whose name resolves to one address per pod, such as a Kubernetes headless service. Each
#'   pod takes `per_pod` requests at once, with the same queue and timeouts as local workers.
#'   The name is resolved again every `resolve_interval` seconds and after a failure: new pods
#'   join, vanished pods are drained, and a failed look-up keeps the last known pods.
#'   `n_min`, `n_max`, `check_unused`, `max_age`, `startup_timeout` and the recycling limits
#'   (`max_requests`, `max_worker_memory`) do not apply.
#' @param per_pod Service mode: requests one pod may have in flight at once.
#' @param resolve_interval Service mode: seconds between look-ups of the service name.
#' @param routes Instead of `plumber_file`: several apps behind one port, as a named list by
#'   path prefix, each a plumber file, a directory or a [valve_app()] with settings of its own,
#'   such as `list("/api" = "api/plumber.R", "/admin" = valve_app("admin/", n_max = 4))`. Each
#'   app has its own pool of workers, sized and timed by its own settings, which default to the
#'   arguments given here. A request goes to the app of the longest prefix that matches its path
#'   in whole segments (`/api` takes `/api` and `/api/x`, not `/apix`), compared as the client
#'   sent it (not decoded); the app's workers see the path without the prefix and the prefix in
#'   `X-Forwarded-Prefix`. A path no route takes is answered `404` by valve. `"/"` may be a route
#'   (it takes what no other route does, and its paths are passed on as they are). See "Several
#'   apps" in the README.
#' @param config Instead of `plumber_file`: the path of a YAML config file, the one the command
#'   line reads with `--config` (see the README for its keys: these arguments by name, and
#'   `routes`). The arguments given here override the file's settings; paths in the file are
#'   relative to the file's directory. A mistake in the file is an error of class
#'   `valve_error_config` that names the key.
#' @param ... Named arguments passed on to [plumber::pr_run()] in every worker, such as
#'   `docs = FALSE`. `host`, `port` and `quiet` are set by valve.
#' @section Errors:
#' Every error has class `valve_error` and one naming its cause: `valve_error_argument` (a bad
#' argument, before anything starts), `valve_error_java` (a JVM older than 21),
#' `valve_error_bind` (the address cannot be bound, such as a taken port), `valve_error_startup`
#' (workers could not start; the message includes the worker's own output),
#' `valve_error_config` (the engine rejected the configuration) and `valve_error_engine`
#' (anything else from the engine). An error from the engine keeps the Java exception as its
#' `parent` ([rlang::last_error()] shows it); its `jobj` is the Java object.
#' @section Request ids:
#' Every request carries an `X-Request-Id`: the client's own when it is a sane token (1 to 128
#' letters, digits and `-_.:+/=@~`), a new random one otherwise. The worker receives it (in
#' plumber, `req$HTTP_X_REQUEST_ID`), the client gets it back, and the access log shows it.
#' @return A `valve_server` handle: `$url` is where it listens, `$admin_url` where the admin
#'   listener answers (`NULL` without one). Print it to see its state.
#' @seealso [valve_run()] to serve in the foreground, [valve_stop()], [valve_workers()],
#'   [valve_status()].
#' @export
#' @examples
#' \dontrun{
#' api <- system.file("examples", "hello", "plumber.R", package = "valve")
#' server <- valve_start(api, port = 0, n_max = 2)
#' server
#' readLines(paste0(server$url, "/hello?name=valve"), warn = FALSE)
#' valve_stop(server)
#' }
valve_start <- function(plumber_file = "plumber.R", host = "127.0.0.1", port = 3000,
                        n_min = 1, n_max = 3, check_unused = 10, max_age = 300,
                        queue_max = 1000, queue_timeout = 60, request_timeout = 300,
                        startup_timeout = 60, max_body_size = 256 * 1024^2,
                        client_timeout = 30, dir = NULL, api = NULL, upstream = NULL,
                        per_pod = 1, resolve_interval = 5, max_requests = 0, max_requests_jitter = 0,
                        max_worker_memory = 0, watch = FALSE, preload = FALSE, admin_port = NULL,
                        access_log = TRUE, type = c("auto", "plumber", "shiny"), max_sessions = 20,
                        routes = NULL, config = NULL, ...) {
  # valve_run() forwards its arguments here: errors then name valve_run(), the function the
  # user called.
  if (identical(rlang::caller_fn(), valve_run)) rlang::local_error_call(rlang::caller_env())
  call <- rlang::current_env()
  type <- check_type(type, call = call)
  source <- api_source(plumber_file, file_given = !missing(plumber_file), dir = dir, api = api,
                       upstream = upstream, per_pod = per_pod, resolve_interval = resolve_interval,
                       type = type, routes = routes, config = config, call = call)
  # With a config file, the arguments given here override the file's settings, and no others.
  arguments <- setdiff(names(formals()), "...")
  given <- arguments[!vapply(arguments, function(name) eval(call("missing", as.name(name)), call), logical(1))]
  config <- valve_config(
    source = source, host = host, port = port, n_min = n_min, n_max = n_max,
    check_unused = check_unused, max_age = max_age, queue_max = queue_max,
    queue_timeout = queue_timeout, request_timeout = request_timeout,
    startup_timeout = startup_timeout, max_body_size = max_body_size,
    client_timeout = client_timeout, max_requests = max_requests,
    max_requests_jitter = max_requests_jitter, max_worker_memory = max_worker_memory,
    watch = watch, preload = preload, admin_port = admin_port, access_log = access_log,
    max_sessions = max_sessions, run_args = list(...), given = given, call = call
  )
  new_valve_server(engine_start(config, call = call), call = call)
}

# The handle: the engine and where it listens. Everything else (state, n_min, n_max, the pool)
# is asked of the engine when needed, so it is never stale.
new_valve_server <- function(engine, call = rlang::caller_env()) {
  server <- new.env(parent = emptyenv())
  server$engine <- engine
  server$url <- engine_call(engine$url(), call = call)
  server$admin_url <- engine_call(engine$adminUrl(), call = call)
  # Runs when the handle is garbage collected and, thanks to onexit, when R quits: the JVM's own
  # shutdown hooks never run under rJava. The engine bounds its own stop; a finalizer must not
  # throw, so a failure there is dropped.
  reg.finalizer(server, function(s) try(engine_stop(s$engine, grace = 0), silent = TRUE), onexit = TRUE)
  class(server) <- "valve_server"
  server
}

#' Stop a valve server
#'
#' Stops accepting new requests (they are answered `503`), lets requests in flight finish for
#' up to `grace` seconds, then stops every worker and waits for them to exit.
#'
#' @param server A handle from [valve_start()].
#' @param grace Seconds to let requests in flight finish.
#' @return `server`, invisibly.
#' @export
valve_stop <- function(server, grace = 10) {
  check_server(server)
  check_seconds(grace, "grace", allow_zero = TRUE, call = rlang::current_env())
  engine_stop(server$engine, grace = grace)
  invisible(server)
}

#' Reload a valve server's workers
#'
#' Deploys new API code without downtime: new workers start with the API's current code and
#' take requests as soon as they are ready; the old workers finish the requests they have,
#' then stop. No request fails and the port stays open. As many new workers start as were
#' running (at least one, even with `n_min = 0`, so broken code is found now), up to `n_max`;
#' while they start the old ones still serve, so the pool may briefly hold more than `n_max`
#' processes.
#'
#' If the new code cannot start, the old workers keep serving and `valve_reload()` fails
#' with an error of class `valve_error_reload` whose parent holds the worker's own output
#' (such as plumber's parse error). `valve_start(watch = TRUE)` reloads by itself when a file
#' changes; the command line reloads on `SIGHUP`.
#'
#' @inheritParams valve_stop
#' @return `server`, invisibly, once the first new worker serves.
#' @export
#' @examples
#' \dontrun{
#' server <- valve_start("plumber.R", port = 0)
#' # ... edit plumber.R ...
#' valve_reload(server)
#' }
valve_reload <- function(server) {
  check_server(server)
  engine_reload(server$engine)
  invisible(server)
}

#' Serve a plumber API with valve until interrupted
#'
#' Like [plumber::pr_run()]: blocks, prints where it listens and shows engine and worker log
#' lines in the console. Press Ctrl-C (Escape in RStudio) to stop; the engine and every worker
#' are stopped before the function returns.
#'
#' `valve_run()` takes every argument of [valve_start()], with the same defaults:
#' `r start_usage()`. Other named arguments are passed on to [plumber::pr_run()] in every
#' worker, such as `docs = FALSE`.
#'
#' @inheritParams valve_start
#' @inheritDotParams valve_start -plumber_file
#' @return `NULL`, invisibly, once stopped.
#' @seealso [valve_start()] to run in the background.
#' @export
#' @examples
#' \dontrun{
#' valve_run(system.file("examples", "hello", "plumber.R", package = "valve"), n_max = 4)
#' }
valve_run <- function(plumber_file = "plumber.R", ...) {
  # Left out when missing, so that valve_start() sees it missing too (`dir =`, `api =`,
  # `upstream =` are alternatives to it).
  server <- if (missing(plumber_file)) valve_start(...) else valve_start(plumber_file, ...)
  on.exit(engine_stop(server$engine, grace = 0), add = TRUE)
  tryCatch(
    {
      upstream <- list(...)[["upstream"]]
      status <- engine_status(server$engine)
      prefixes <- status$routes$prefix
      serving <- if (length(prefixes) > 1 || !identical(prefixes, "/")) {
        "valve is serving {.url {server$url}}: {.val {prefixes}}, each with workers of its own."
      } else if (is.null(upstream)) {
        "valve is serving {.url {server$url}} with {status$n_min} to {status$n_max} worker{?s}."
      } else {
        "valve is serving {.url {server$url}} from the pods of {.url {upstream}}."
      }
      watching <- if (!is.null(server$admin_url)) {
        c(i = "Metrics, probes and status: {.url {server$admin_url}/status}.")
      }
      cli::cli_inform(c(v = serving, watching, i = "Press Ctrl-C to stop."))
      while (engine_running(server$engine)) {
        show_logs(server)
        Sys.sleep(0.1)
      }
    },
    interrupt = function(e) cli::cli_inform(c(i = "Stopping valve."))
  )
  engine_stop(server$engine, grace = 0)
  show_logs(server)
  invisible()
}

# valve_start()'s arguments and defaults as its usage shows them, for ?valve_run (roxygen).
start_usage <- function() {
  defaults <- formals(valve_start)
  defaults <- defaults[names(defaults) != "..."]
  text <- vapply(defaults, function(x) paste(deparse(x), collapse = " "), character(1))
  paste0("`", names(defaults), " = ", text, "`", collapse = ", ")
}

show_logs <- function(server, call = rlang::caller_env()) {
  lines <- engine_logs(server$engine, call = call)
  if (length(lines) > 0) {
    message(paste(lines, collapse = "\n"))
  }
}

#' Read a valve server's log
#'
#' Engine and worker output (each line tagged with its source, such as `[worker 2]`) since the
#' last call. [valve_run()] prints these lines as they come; with [valve_start()] read them here.
#'
#' @inheritParams valve_stop
#' @return A character vector, oldest line first.
#' @export
valve_logs <- function(server) {
  check_server(server)
  engine_logs(server$engine)
}

#' List a valve server's workers
#'
#' @inheritParams valve_stop
#' @return A data frame with one row per ready worker: `name`, `pid`, `port`, `busy`,
#'   `requests` (answered or in flight), `max_in_flight` (the most requests it ever had at
#'   once, which valve keeps at 1; a Shiny app's requests share their session's worker and do
#'   not count here), `sessions` (open WebSocket connections: for a Shiny app, its live
#'   sessions) and `route` (the prefix of its app; `"/"` for a single app).
#' @export
valve_workers <- function(server) {
  check_server(server)
  workers <- engine_status(server$engine)$pool$upstreams
  if (length(workers) == 0) {
    return(data.frame(
      name = character(), pid = integer(), port = integer(), busy = logical(),
      requests = numeric(), max_in_flight = integer(), sessions = integer(), route = character()
    ))
  }
  data.frame(
    name = workers$name, pid = as.integer(workers$pid), port = as.integer(workers$port),
    busy = workers$busy, requests = workers$requests,
    max_in_flight = as.integer(workers$max_in_flight),
    sessions = as.integer(workers$sessions), route = workers$route
  )
}

#' @export
format.valve_server <- function(x, ...) {
  status <- engine_status(x$engine)
  pool <- status$pool
  c(
    paste0("<valve_server> ", status$url, " (", status$state, ")"),
    sprintf(
      "  workers: %d busy, %d idle, %d starting (n_min %d, n_max %d); %d request%s queued",
      pool$busy, pool$idle, pool$starting, status$n_min, status$n_max, pool$queued,
      if (pool$queued == 1) "" else "s"
    ),
    route_lines(status$routes),
    if (!is.null(status$admin_url)) paste0("  admin: ", status$admin_url, " (/metrics, /healthz, /readyz, /status)")
  )
}

# One line per route when there are several (a single app is the one route "/").
route_lines <- function(routes) {
  if (NROW(routes) < 2 && identical(routes$prefix, "/")) {
    return(character())
  }
  pool <- routes$pool
  sprintf(
    "  %s: %d busy, %d idle, %d starting (n_min %d, n_max %d); %d queued",
    routes$prefix, pool$busy, pool$idle, pool$starting, routes$n_min, routes$n_max, pool$queued
  )
}

#' What a valve server is doing
#'
#' The same data as the admin listener's `/status.json` and its status page, without needing
#' one: the engine's state and readiness, each worker (pid, busy or idle, requests, seconds
#' idle, resident memory), the queue, requests by status code, valve's own error answers by
#' reason, workers stopped by reason, and the latest requests.
#'
#' @inheritParams valve_stop
#' @return A list of class `valve_status`: `state`, `url`, `admin_url`, `upstream`, `n_min`,
#'   `n_max`, `ready` and `readiness` (what `/readyz` says), `time`, `pool` (`starting`, `idle`,
#'   `busy`, `queued`, `started`, `failed`, `exits` by reason and `upstreams`, one row per
#'   worker), `requests` (counts by status code), `errors` (counts by `"<code> <reason>"`),
#'   `routes` (a data frame with one row per route: `prefix`, `n_min`, `n_max`, `ready`,
#'   `readiness`, and its own `pool`, `requests` and `errors`; a single app is the one route
#'   `"/"`) and `recent` (the latest requests, newest first). Print it for a summary.
#' @export
valve_status <- function(server) {
  check_server(server)
  structure(engine_status(server$engine), class = "valve_status")
}

#' @export
format.valve_status <- function(x, ...) {
  pool <- x$pool
  workers <- pool$upstreams
  counts <- function(values) {
    if (length(values) == 0) "none" else paste0(names(values), ": ", unlist(values), collapse = ", ")
  }
  lines <- c(
    paste0("<valve_status> ", x$url, " (", x$state, "; ", if (isTRUE(x$ready)) "ready" else "not ready",
           ": ", x$readiness, ")"),
    sprintf("  workers: %d busy, %d idle, %d starting; %d request%s queued", pool$busy, pool$idle,
            pool$starting, pool$queued, if (pool$queued == 1) "" else "s"),
    route_lines(x$routes),
    paste0("  requests by status: ", counts(x$requests)),
    paste0("  valve's own errors: ", counts(x$errors)),
    paste0("  workers stopped: ", counts(pool$exits))
  )
  if (length(workers) > 0 && NROW(workers) > 0) {
    rss <- ifelse(workers$rss_bytes < 0, "-", sprintf("%.0f MiB", workers$rss_bytes / 1024^2))
    table <- data.frame(
      name = workers$name, pid = ifelse(workers$pid < 0, "-", workers$pid),
      state = ifelse(workers$busy, "busy", "idle"), requests = workers$requests,
      idle = ifelse(workers$busy, "-", sprintf("%.1f s", workers$idle_seconds)), memory = rss
    )
    lines <- c(lines, paste0("  ", utils::capture.output(print(table, row.names = FALSE))))
  }
  lines
}

#' @export
print.valve_status <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

#' @export
print.valve_server <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

check_server <- function(server, call = rlang::caller_env()) {
  if (!inherits(server, "valve_server")) {
    valve_abort(
      "{.arg server} must be a handle returned by {.fn valve_start}, not {not_value(server)}.",
      kind = "argument", call = call
    )
  }
}
