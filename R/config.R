# Turns valve_start()'s arguments into the engine's configuration, checking each one first so
# that a mistake is reported by name before any process starts.

valve_config <- function(plumber_file, host, port, n_min, n_max, check_unused, max_age,
                         queue_max, queue_timeout, request_timeout, startup_timeout,
                         max_body_size, client_timeout, run_args, call = rlang::caller_env()) {
  plumber_file <- check_plumber_file(plumber_file, call = call)
  check_host(host, call = call)
  check_whole(port, "port", min = 0, max = 65535, call = call)
  check_whole(n_min, "n_min", min = 0, call = call)
  check_whole(n_max, "n_max", min = 1, call = call)
  if (n_min > n_max) {
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
  check_run_args(run_args, call = call)

  list(
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
    worker = worker_spec(plumber_file, run_args)
  )
}

# How the engine spawns one worker: this session's own Rscript and library paths, so workers run
# the same R and packages as the user.
worker_spec <- function(plumber_file, run_args) {
  environment <- list(
    VALVE_PLUMBER_FILE = plumber_file,
    R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)
  )
  if (length(run_args) > 0) {
    path <- tempfile("valve-run-args-", fileext = ".rds")
    saveRDS(run_args, path)
    environment$VALVE_RUN_ARGS <- path
  }
  list(
    command = c(
      file.path(R.home("bin"), "Rscript"), "--no-echo", "--no-restore",
      system.file("worker", "worker.R", package = "valve", mustWork = TRUE)
    ),
    environment = environment,
    directory = dirname(plumber_file)
  )
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
      c("{.arg host} must be an IP address or host name, such as {.val 127.0.0.1}, not {.val {format(host)}}.",
        i = "Use {.val 0.0.0.0} to listen on every interface."),
      kind = "argument", call = call
    )
  }
}

check_whole <- function(x, arg, min, max = Inf, call) {
  ok <- is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    x == round(x) && x >= min && x <= max
  if (!ok) {
    range <- if (is.finite(max)) paste0("between ", min, " and ", max) else paste0(">= ", min)
    valve_abort(
      "{.arg {arg}} must be a whole number {range}, not {.obj_type_friendly {x}}{if (is.numeric(x) && length(x) == 1) paste0(' (', x, ')') else ''}.",
      kind = "argument", call = call
    )
  }
}

check_seconds <- function(x, arg, allow_zero = FALSE, call) {
  ok <- is.numeric(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    (x > 0 || (allow_zero && x == 0))
  if (!ok) {
    valve_abort(
      "{.arg {arg}} must be a {if (allow_zero) 'non-negative' else 'positive'} number of seconds, not {.obj_type_friendly {x}}{if (is.numeric(x) && length(x) == 1) paste0(' (', x, ')') else ''}.",
      kind = "argument", call = call
    )
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
