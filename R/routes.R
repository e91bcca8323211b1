#' One app behind a route, with settings of its own
#'
#' Describes an app for [valve_start()]'s `routes`: what it serves and, optionally, settings of
#' its own pool of workers. A setting left `NULL` takes the value given to [valve_start()] (or
#' its default), so `valve_app("api/plumber.R", n_max = 4)` differs from the other routes in
#' `n_max` only. A plain path in `routes` is the same as `valve_app(path)`.
#'
#' Each route has its own workers, queue and limits: a slow route never holds another route's
#' workers. Its workers see request paths without the route's prefix, and the prefix in the
#' `X-Forwarded-Prefix` header (`req$HTTP_X_FORWARDED_PREFIX` in plumber).
#'
#' @param path A plumber file, or a directory served like `dir` in [valve_start()] (with an
#'   `entrypoint.R` or a `plumber.R`, or a Shiny app: see `type`).
#' @param type What a directory `path` holds, as `type` in [valve_start()]: `"auto"` decides
#'   from its files, `"plumber"` or `"shiny"` insist. Under a prefix, a Shiny app's session
#'   cookie is scoped to the prefix, and `/prefix` redirects to `/prefix/`.
#' @param n_min,n_max,check_unused,max_age,queue_max,queue_timeout,request_timeout,startup_timeout,max_requests,max_requests_jitter,max_worker_memory,watch,preload,max_sessions
#'   This app's own value of [valve_start()]'s argument of the same name; `NULL` takes that one.
#' @return An object of class `valve_app`, for `routes`.
#' @seealso [valve_start()], whose `routes` takes these.
#' @export
#' @examples
#' \dontrun{
#' valve_start(routes = list(
#'   "/api" = valve_app("api/plumber.R", n_max = 4),
#'   "/admin" = "admin/"
#' ))
#' }
valve_app <- function(path, n_min = NULL, n_max = NULL, check_unused = NULL, max_age = NULL,
                      queue_max = NULL, queue_timeout = NULL, request_timeout = NULL,
                      startup_timeout = NULL, max_requests = NULL, max_requests_jitter = NULL,
                      max_worker_memory = NULL, watch = NULL, preload = NULL, max_sessions = NULL,
                      type = c("auto", "plumber", "shiny")) {
  call <- rlang::current_env()
  source <- app_source(path, "path", type = check_type(type, call = call), call = call)
  settings <- list(
    n_min = n_min, n_max = n_max, check_unused = check_unused, max_age = max_age,
    queue_max = queue_max, queue_timeout = queue_timeout, request_timeout = request_timeout,
    startup_timeout = startup_timeout, max_requests = max_requests,
    max_requests_jitter = max_requests_jitter, max_worker_memory = max_worker_memory,
    watch = watch, preload = preload, max_sessions = max_sessions
  )
  settings <- settings[!vapply(settings, is.null, logical(1))]
  for (name in names(settings)) {
    value <- settings[[name]]
    switch(app_setting_kind(name),
      whole = check_whole(value, name, min = if (name %in% c("n_max", "max_sessions")) 1 else 0,
                          max = .Machine$integer.max, call = call),
      seconds = check_seconds(value, name, call = call),
      flag = check_flag(value, name, call = call)
    )
  }
  structure(list(source = source, settings = settings), class = "valve_app")
}

app_setting_kind <- function(name) {
  if (name %in% c("watch", "preload")) {
    "flag"
  } else if (name %in% c("check_unused", "max_age", "queue_timeout", "request_timeout", "startup_timeout")) {
    "seconds"
  } else {
    "whole"
  }
}

#' @export
format.valve_app <- function(x, ...) {
  what <- if (x$source$mode == "file") x$source$file else x$source$dir
  settings <- if (length(x$settings) > 0) {
    paste0(" (", paste0(names(x$settings), " = ", vapply(x$settings, format, character(1)), collapse = ", "), ")")
  }
  paste0("<valve_app> ", what, settings)
}

#' @export
print.valve_app <- function(x, ...) {
  writeLines(format(x, ...))
  invisible(x)
}

# A plumber file or a directory (a plumber API or a Shiny app), as what one app serves.
app_source <- function(path, arg, type = "auto", call) {
  if (is.character(path) && length(path) == 1 && !is.na(path) && dir.exists(path)) {
    return(dir_source(path, type, call = call))
  }
  if (type != "auto") {
    valve_abort(
      c("{.arg type} says what a directory holds, and {.arg {arg}} is not a directory.",
        i = "A plumber file needs no {.arg type}."),
      kind = "argument", call = call
    )
  }
  if (!is.character(path) || length(path) != 1 || is.na(path) || !file.exists(path)) {
    valve_abort(
      c("{.arg {arg}} must be the path of a plumber file or of a directory, not {not_value(path)}.",
        i = "The working directory is {.path {getwd()}}."),
      kind = "argument", call = call
    )
  }
  list(mode = "file", file = check_plumber_file(path, call = call))
}

# `routes` as the engine's configuration: prefix to app, each with its worker spec and own
# settings. The engine checks the prefixes and applies every rule (one owner, as for the CLI).
routes_config <- function(routes, run_args, call) {
  if (!is.list(routes) || length(routes) == 0 || is.null(names(routes)) || any(!nzchar(names(routes))) ||
      anyNA(names(routes))) {
    valve_abort(
      c("{.arg routes} must be a named list of apps by path prefix, not {not_value(routes)}.",
        i = "For example {.code routes = list(\"/api\" = \"api/plumber.R\", \"/admin\" = valve_app(\"admin/\", n_max = 4))}."),
      kind = "argument", call = call
    )
  }
  apps <- lapply(names(routes), function(prefix) {
    app <- routes[[prefix]]
    if (!inherits(app, "valve_app")) {
      if (!is.character(app) || length(app) != 1) {
        valve_abort(
          c("{.arg routes} {.val {prefix}} must be a path or a {.fn valve_app}, not {not_value(app)}."),
          kind = "argument", call = call
        )
      }
      app <- structure(list(source = app_source(app, paste0("routes$`", prefix, "`"), call = call), settings = list()),
                       class = "valve_app")
    }
    c(list(worker = worker_spec(app$source, run_args)), app_settings_json(app$settings))
  })
  names(apps) <- names(routes)
  apps
}

# Settings as the engine's JSON types: whole numbers as integers, seconds as doubles.
app_settings_json <- function(settings) {
  for (name in names(settings)) {
    settings[[name]] <- switch(app_setting_kind(name),
      whole = as.integer(settings[[name]]),
      seconds = as.double(settings[[name]]),
      flag = settings[[name]]
    )
  }
  settings
}

# `config`: the engine reads the file and applies every rule (as the CLI's --config does); R
# sends the file's path, with which R the workers run, and the arguments given explicitly,
# which win over the file.
config_file_config <- function(config, given, run_args, call) {
  if (!is.character(config) || length(config) != 1 || is.na(config) || !nzchar(config)) {
    valve_abort(
      "{.arg config} must be the path of a YAML file, not {not_value(config)}.",
      kind = "argument", call = call
    )
  }
  path <- normalizePath(config, mustWork = FALSE)
  c(
    list(
      config = path,
      worker_defaults = list(
        rscript = file.path(R.home("bin"), "Rscript"),
        lib_paths = as.list(.libPaths()),
        run_args = save_run_args(run_args)
      )
    ),
    given
  )
}
