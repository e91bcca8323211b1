# Turns valve_start()'s arguments into the engine's configuration, checking each one first so
# that a mistake is reported by name before any process starts.

# With a config file (source$mode "config"), only the arguments `given` are sent, to override
# the file's; rules between two arguments are then the engine's, which sees the file too.
valve_config <- function(source, host, port, n_min, n_max, check_unused, max_age,
                         queue_max, queue_timeout, request_timeout, startup_timeout,
                         max_body_size, client_timeout, max_requests, max_requests_jitter,
                         max_worker_memory, watch, preload, admin_port, access_log, max_sessions,
                         run_args, given = NULL, call = rlang::caller_env()) {
  from_file <- source$mode == "config"
  check_host(host, call = call)
  check_whole(port, "port", min = 0, max = 65535, call = call)
  check_whole(n_min, "n_min", min = 0, call = call)
  check_whole(n_max, "n_max", min = 1, call = call)
  if (!from_file && n_min > n_max) {
    valve_abort(
      c("{.arg n_min} ({n_min}) must not be larger than {.arg n_max} ({n_max}).",
        i = "Lower {.arg n_min} or raise {.arg n_max}."),
      kind = "argument", call = call
    )
  }
  check_seconds(check_unused, "check_unused", call = call)
  check_seconds(max_age, "max_age", call = call)
  check_whole(queue_max, "queue_max", min = 0, call = call)
  check_seconds(queue_timeout, "queue_timeout", call = call)
  check_seconds(request_timeout, "request_timeout", call = call)
  check_seconds(startup_timeout, "startup_timeout", call = call)
  check_whole(max_body_size, "max_body_size", min = 0, call = call)
  check_seconds(client_timeout, "client_timeout", call = call)
  check_whole(max_requests, "max_requests", min = 0, max = .Machine$integer.max, call = call)
  check_whole(max_requests_jitter, "max_requests_jitter", min = 0, max = .Machine$integer.max, call = call)
  check_whole(max_worker_memory, "max_worker_memory", min = 0, max = .Machine$integer.max, call = call)
  check_flag(watch, "watch", call = call)
  check_flag(preload, "preload", call = call)
  if (!is.null(admin_port)) {
    check_whole(admin_port, "admin_port", min = 0, max = 65535, call = call)
    if (!from_file && admin_port != 0 && admin_port == port) {
      valve_abort(
        c("{.arg admin_port} ({admin_port}) must differ from {.arg port}.",
          i = "The admin listener is a port of its own; {.code admin_port = 0} picks a free one."),
        kind = "argument", call = call
      )
    }
  }
  check_flag(access_log, "access_log", call = call)
  check_whole(max_sessions, "max_sessions", min = 1, max = .Machine$integer.max, call = call)
  check_run_args(run_args, call = call)

  engine <- list(
    host = host,
    port = as.integer(port),
    n_min = as.integer(n_min),
    n_max = as.integer(n_max),
    check_unused = as.double(check_unused),
    max_age = as.double(max_age),
    queue_max = as.integer(queue_max),
    queue_timeout = as.double(queue_timeout),
    request_timeout = as.double(request_timeout),
    startup_timeout = as.double(startup_timeout),
    max_body_size = as.double(max_body_size),
    client_timeout = as.double(client_timeout),
    max_requests = as.integer(max_requests),
    max_requests_jitter = as.integer(max_requests_jitter),
    max_worker_memory = as.integer(max_worker_memory),
    watch = watch,
    preload = preload,
    admin_port = if (!is.null(admin_port)) as.integer(admin_port),
    access_log = access_log,
    max_sessions = as.integer(max_sessions)
  )
  switch(source$mode,
    config = config_file_config(source$config, engine[intersect(names(engine), given)], run_args, call = call),
    service = c(engine, list(upstream = source$upstream, per_pod = source$per_pod,
                             resolve_interval = source$resolve_interval)),
    routes = c(engine, list(routes = routes_config(source$routes, run_args, call = call))),
    c(engine, list(worker = worker_spec(source, run_args)))
  )
}

# Where requests go: local workers running a plumber file, a directory or a function, or the
# pods behind a service name. Exactly one.
api_source <- function(plumber_file, file_given, dir, api, upstream, per_pod, resolve_interval,
                       type = "auto", routes = NULL, config = NULL, call = rlang::caller_env()) {
  given <- c(plumber_file = file_given, dir = !is.null(dir), api = !is.null(api), upstream = !is.null(upstream),
             routes = !is.null(routes), config = !is.null(config))
  if (sum(given) > 1) {
    valve_abort(
      c("Give only one of {.arg {names(given)[given]}}.",
        i = "{.arg plumber_file} serves a file, {.arg dir} a directory, {.arg api} a router built by a function, {.arg upstream} the pods of a service, {.arg routes} several apps by path prefix, {.arg config} what a config file says."),
      kind = "argument", call = call
    )
  }
  if (type != "auto" && is.null(dir)) {
    valve_abort(
      c("{.arg type} says what {.arg dir} holds, and no {.arg dir} was given.",
        i = "Serve a Shiny app with {.code valve_run(dir = \"app\")}."),
      kind = "argument", call = call
    )
  }
  if (!is.null(config)) {
    return(list(mode = "config", config = config))
  }
  if (!is.null(routes)) {
    return(list(mode = "routes", routes = routes))
  }
  if (!is.null(upstream)) {
    if (!is.character(upstream) || length(upstream) != 1 || !grepl("^http://[^/:]+(:[0-9]+)?/?$", upstream)) {
      valve_abort(
        c("{.arg upstream} must look like {.val http://name:port}, not {not_value(upstream)}.",
          i = "For Kubernetes, a headless service: {.val http://api.my-namespace.svc.cluster.local:8000}."),
        kind = "argument", call = call
      )
    }
    check_whole(per_pod, "per_pod", min = 1, call = call)
    check_seconds(resolve_interval, "resolve_interval", call = call)
    return(list(mode = "service", upstream = sub("/$", "", upstream), per_pod = as.integer(per_pod),
                resolve_interval = as.double(resolve_interval)))
  }
  if (!is.null(dir)) {
    return(dir_source(dir, type, call = call))
  }
  if (!is.null(api)) {
    if (!is.function(api)) {
      valve_abort(
        c("{.arg api} must be a function that returns a plumber router, not {.obj_type_friendly {api}}.",
          i = "For example {.code api = function() plumber::pr() |> plumber::pr_get(\"/\", function() \"hi\")}."),
        kind = "argument", call = call
      )
    }
    return(list(mode = "api", api = api))
  }
  list(mode = "file", file = check_plumber_file(plumber_file, call = call))
}

# A directory as what an app serves. "auto" leaves the choice to the engine
# (dev.valve.worker.WorkerSpec), which makes it for the command line too; check_api_dir() only
# refuses a directory that holds neither a plumber API nor a Shiny app.
dir_source <- function(dir, type, call) {
  dir <- check_api_dir(dir, type, call = call)
  list(mode = if (type == "shiny") "shiny" else "dir", dir = dir)
}

check_type <- function(type, call) {
  choices <- c("auto", "plumber", "shiny")
  if (identical(type, choices)) return("auto")
  if (!is.character(type) || length(type) != 1 || !type %in% choices) {
    valve_abort(
      "{.arg type} must be one of {.or {.val {choices}}}, not {not_value(type)}.",
      kind = "argument", call = call
    )
  }
  type
}

check_api_dir <- function(dir, type, call) {
  if (!is.character(dir) || length(dir) != 1 || is.na(dir)) {
    valve_abort(
      "{.arg dir} must be the path of an existing directory, not {not_value(dir)}.",
      kind = "argument", call = call
    )
  }
  if (!dir.exists(dir)) {
    valve_abort(
      c("{.arg dir} {.path {dir}} is not an existing directory.",
        i = "The working directory is {.path {getwd()}}."),
      kind = "argument", call = call
    )
  }
  has <- function(file) file.exists(file.path(dir, file))
  plumber <- has("entrypoint.R") || has("plumber.R")
  shiny <- has("app.R") || (has("ui.R") && has("server.R"))
  if (type == "plumber" && !plumber || type == "auto" && !plumber && !shiny) {
    valve_abort(
      c("{.arg dir} {.path {dir}} has neither an {.file entrypoint.R} nor a {.file plumber.R}{if (type == 'auto') ', nor a Shiny app' else ''}.",
        i = "Add one, or pass a file with {.arg plumber_file}."),
      kind = "argument", call = call
    )
  }
  if (type == "shiny" && !shiny) {
    valve_abort(
      c("{.arg dir} {.path {dir}} is not a Shiny app: it has neither an {.file app.R} nor a {.file ui.R} and a {.file server.R}.",
        i = "Or serve it as what it is with {.code type = \"auto\"}."),
      kind = "argument", call = call
    )
  }
  normalizePath(dir, mustWork = TRUE)
}

# What the workers serve and with which R: this session's own Rscript and library paths, so
# workers run the same R and packages as the user. The engine knows how to start a worker
# (dev.valve.worker.WorkerProtocol). Objects a worker needs (pr_run() arguments, an api
# function) travel as RDS files in this session's temporary directory; the engine deletes them
# when it stops.
worker_spec <- function(source, run_args) {
  list(
    mode = source$mode,
    path = switch(source$mode,
      file = source$file,
      dir = ,
      shiny = source$dir,
      api = save_rds(source$api, "valve-api-")
    ),
    rscript = file.path(R.home("bin"), "Rscript"),
    lib_paths = as.list(.libPaths()),
    run_args = save_run_args(run_args),
    directory = if (source$mode == "api") getwd()
  )
}

save_rds <- function(object, prefix) {
  path <- tempfile(prefix, fileext = ".rds")
  saveRDS(object, path)
  path
}

# The pr_run() arguments for the workers, as an RDS file; NULL when there are none.
save_run_args <- function(run_args) {
  if (length(run_args) > 0) save_rds(run_args, "valve-run-args-")
}

check_plumber_file <- function(path, call) {
  if (!is.character(path) || length(path) != 1 || is.na(path) || !nzchar(path)) {
    valve_abort(
      "{.arg plumber_file} must be the path of a plumber file, not {.obj_type_friendly {path}}.",
      kind = "argument", call = call
    )
  }
  if (!file.exists(path) || dir.exists(path)) {
    valve_abort(
      c("{.arg plumber_file} {.path {path}} does not exist.",
        i = "The working directory is {.path {getwd()}}; give a path relative to it or an absolute one."),
      kind = "argument", call = call
    )
  }
  if (file.access(path, 4) != 0) {
    valve_abort(
      c("{.arg plumber_file} {.path {path}} is not readable.",
        i = "Check the file's permissions."),
      kind = "argument", call = call
    )
  }
  normalizePath(path, mustWork = TRUE)
}

check_host <- function(host, call) {
  if (!is.character(host) || length(host) != 1 || is.na(host) ||
      !grepl("^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$|^::$", host)) {
    valve_abort(
      c("{.arg host} must be an IP address or host name, such as {.val 127.0.0.1}, not {not_value(host)}.",
        i = "Use {.val 0.0.0.0} to listen on every interface."),
      kind = "argument", call = call
    )
  }
}

check_whole <- function(x, arg, min, max = Inf, call) {
  ok <- is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    x == round(x) && x >= min && x <= max
  if (!ok) {
    range <- if (is.finite(max)) paste("between", min, "and", max) else paste(">=", min)
    valve_abort(
      "{.arg {arg}} must be a whole number {range}, not {not_value(x)}.",
      kind = "argument", call = call
    )
  }
}

check_flag <- function(x, arg, call) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    valve_abort("{.arg {arg}} must be {.code TRUE} or {.code FALSE}, not {not_value(x)}.", kind = "argument", call = call)
  }
}

check_seconds <- function(x, arg, allow_zero = FALSE, call) {
  ok <- is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    (x > 0 || (allow_zero && x == 0))
  if (!ok) {
    sign <- if (allow_zero) "non-negative" else "positive"
    valve_abort(
      "{.arg {arg}} must be a {sign} number of seconds, not {not_value(x)}.",
      kind = "argument", call = call
    )
  }
}

# What a rejected argument was, for "must be ..., not <this>.": a single number as itself
# (`0`, `-1`, `1.5`, `Inf`), a single string quoted, anything else as its type (`NA`, `NULL`,
# `a double vector`).
not_value <- function(x) {
  if (is.numeric(x) && length(x) == 1 && !is.na(x)) {
    format(x, scientific = FALSE, digits = 15)
  } else if (is.character(x) && length(x) == 1 && !is.na(x)) {
    cli::format_inline("the string {.val {x}}")
  } else {
    cli::format_inline("{.obj_type_friendly {x}}")
  }
}

check_run_args <- function(run_args, call) {
  if (length(run_args) == 0) {
    return()
  }
  names <- names(run_args)
  if (is.null(names) || any(!nzchar(names))) {
    valve_abort(
      c("Every argument in {.arg ...} must be named: they are passed to {.fn plumber::pr_run} in each worker.",
        i = "For example {.code valve_run(\"plumber.R\", docs = FALSE)}."),
      kind = "argument", call = call
    )
  }
  reserved <- intersect(names, c("host", "port", "quiet"))
  if (length(reserved) > 0) {
    valve_abort(
      c("{.arg {reserved}} cannot be passed in {.arg ...}: valve sets {?it/them} for each worker.",
        i = "Use {.fn valve_run}'s own {.arg host} and {.arg port} for the address clients use."),
      kind = "argument", call = call
    )
  }
}
