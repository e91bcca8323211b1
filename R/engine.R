# The one boundary between R and the Java engine. Everything R asks of Java goes through
# engine_call(), which turns Java exceptions into classed R errors in one place.

engine_class <- "dev.valve.Valve"
config_class <- "dev.valve.ValveConfig"
java_min_version <- 21L

# The class loader that holds valve's jars, once engine_init() has made it.
java_loader <- function() {
  get(".rJava.class.loader", envir = asNamespace("valve"))
}

# The first engine call starts the JVM (unless something else in this session already has),
# checks its version and registers valve's jars in a class loader of valve's own. Later calls
# return at once. Nothing of this happens when the package loads, so library(valve) is quick.
engine_init <- function(call = rlang::caller_env()) {
  loader <- java_loader()
  if (!is.null(loader)) return(loader)
  check_java(call = call)
  # .jpackage() stores the loader in the namespace, which is locked once loaded. (R CMD check
  # accepts unlockBinding() on the package's own namespace when it is named this way.)
  unlockBinding(".rJava.class.loader", asNamespace("valve"))
  on.exit(lockBinding(".rJava.class.loader", asNamespace("valve")), add = TRUE)
  lib <- dirname(getNamespaceInfo("valve", "path"))
  rJava::.jpackage("valve", lib.loc = lib, own.loader = TRUE)
  java_loader()
}

# Starts the engine with a configuration list and returns the engine object.
engine_start <- function(config, call = rlang::caller_env()) {
  if (!is.null(config$worker)) check_worker_packages(call = call)
  loader <- engine_init(call = call)
  json <- jsonlite::toJSON(config, auto_unbox = TRUE, null = "null", digits = NA)
  engine_call(
    rJava::J(engine_class, class.loader = loader)$start(as.character(json)),
    call = call
  )
}

# The packages inst/worker/worker.R loads in every worker, and this R session never does. They
# are named by the worker's calls, quoted so that naming them loads nothing here; R CMD check
# reads the `::` as this package's use of its Imports.
worker_packages <- function() {
  calls <- quote(list(plumber::plumb, later::later))
  unique(vapply(as.list(calls)[-1], function(e) as.character(e[[2]]), character(1)))
}

# Workers are separate R processes: a package they need but cannot find would only show as a
# worker that fails to start. Checked up front, without loading anything.
check_worker_packages <- function(call = rlang::caller_env()) {
  packages <- worker_packages()
  missing <- packages[!nzchar(vapply(packages, function(p) system.file(package = p), character(1)))]
  if (length(missing) > 0) {
    valve_abort(
      c(
        "valve's workers need the package{?s} {.pkg {missing}}, which {?is/are} not installed.",
        i = "Install {?it/them} with {.code install.packages({deparse1(missing)})}."
      ),
      kind = "startup",
      call = call
    )
  }
  invisible(packages)
}

# Each takes the `call` of the user-facing function it serves, so that an engine failure names
# valve_workers() or valve_stop(), not these helpers.
engine_status <- function(engine, call = rlang::caller_env()) {
  jsonlite::fromJSON(engine_call(engine$statusJson(), call = call), simplifyVector = TRUE)
}

engine_logs <- function(engine, call = rlang::caller_env()) {
  lines <- engine_call(engine$drainLog(), call = call)
  if (is.null(lines)) character() else as.character(lines)
}

engine_running <- function(engine, call = rlang::caller_env()) {
  isTRUE(engine_call(engine$isRunning(), call = call))
}

# The engine bounds its own stop (grace, then SIGTERM and SIGKILL for workers): nothing here waits.
engine_stop <- function(engine, grace, call = rlang::caller_env()) {
  engine_call(engine$stop(as.double(grace)), call = call)
  invisible()
}

# Java exceptions become errors of class valve_error_<kind>, where the kind is the
# ValveException's (config, bind, startup) or "engine" for anything else. The Java exception
# stays attached as the error's `parent`, so rlang::last_error() and `cnd$parent` show it and
# `cnd$parent$jobj` is the Throwable itself (for its cause or stack trace).
engine_call <- function(expr, call = rlang::caller_env()) {
  tryCatch(expr, Throwable = function(e) {
    java <- e$jobj
    # Compare names: %instanceof% would look the class up outside valve's own class loader.
    kind <- if (!is.null(java) && identical(java$getClass()$getName(), "dev.valve.ValveException")) {
      java$kind()
    } else {
      "engine"
    }
    valve_abort(
      engine_error_message(kind),
      kind = kind,
      call = call,
      parent = java_condition(e)
    )
  })
}

# rJava's condition for a Java exception, made safe to use as a parent: rJava's `$` method for
# class "Throwable" sends any field it does not hold to Java, and rlang reads fields of parents
# that a Java exception does not have. Its message is the exception's own (without the class
# name in front) and its call is NULL, rather than rJava's internal .jcall().
java_condition <- function(e) {
  java <- e$jobj
  message <- if (!is.null(java)) java$getMessage()
  if (is.null(message) || !nzchar(message)) message <- conditionMessage(e)
  structure(
    list(message = message, call = NULL, jobj = java),
    class = setdiff(class(e), c("Throwable", "Object"))
  )
}

engine_error_message <- function(kind) {
  switch(kind,
    config = "The engine rejected the configuration.",
    bind = c(
      "valve could not listen on the requested address.",
      i = "If the port is taken, use {.code port = 0} to listen on a free one (see {.code server$url})."
    ),
    startup = "valve could not start its R workers.",
    "The valve engine failed."
  )
}

# The engine's own defaults (ValveConfig.defaultsJson()), as a named list: snake_case argument
# name to default value. A test checks that valve_start()'s defaults are the same.
engine_defaults <- function(call = rlang::caller_env()) {
  loader <- engine_init(call = call)
  json <- engine_call(
    rJava::J(config_class, class.loader = loader)$defaultsJson(),
    call = call
  )
  jsonlite::fromJSON(as.character(json), simplifyVector = TRUE)
}

java_version <- function() {
  java_start()
  rJava::.jcall("java/lang/System", "S", "getProperty", "java.specification.version")
}

java_home <- function() {
  rJava::.jcall("java/lang/System", "S", "getProperty", "java.home")
}

# rJava binds one JVM per R process when it first starts, so a JVM that is too old can only be
# replaced by restarting R with another JAVA_HOME: say so, with both ways to do it.
check_java <- function(call = rlang::caller_env()) {
  version <- java_version()
  major <- suppressWarnings(as.integer(sub("^1\\.", "", version)))
  if (is.na(major) || major < java_min_version) {
    home <- java_home()
    valve_abort(
      c(
        "valve needs Java {java_min_version} or newer, but rJava runs Java {version} from {.path {home}}.",
        i = "Restart R with {.envvar JAVA_HOME} pointing at a JDK >= {java_min_version}, for example {.code JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 R}.",
        i = "Or make it permanent with {.code R CMD javareconf JAVA_HOME=/path/to/jdk} (as root), then restart R.",
        i = "{.envvar JAVA_HOME} must be set before R starts: {.code Sys.setenv(JAVA_HOME = ...)} inside R is too late, as rJava cannot switch JVMs in a running session."
      ),
      kind = "java",
      call = call,
      java_version = version
    )
  }
  invisible(major)
}

#' @section Java settings:
#' rJava runs one JVM per R session, started by the first `valve_start()` (loading valve does
#' not start it) with the flags in `options(java.parameters = )`. If that option is unset (or
#' holds rJava's own default, `"-Xmx512m"`), valve starts the JVM with its own flags, listed
#' with the reason for each in `system.file("jvm-flags", package = "valve")`: a bounded heap, a
#' small young generation and the serial collector keep the session's memory small under load,
#' and the heap and the memory the JVM freed go back to the system when the engine falls idle
#' after serving. The command line uses the same flags. To choose other
#' flags, set the option before the first `valve_start()` in the session, for example
#' `options(java.parameters = c("-Xmx1g", "-XX:+UseG1GC"))`; valve then adds none of its own.
#' Flags cannot change once the JVM runs, so the option has no effect after the first start, or
#' when another package started the JVM.
#' @name valve_start
#' @rdname valve_start
NULL

# JVM flags valve starts the JVM with when the user chose none (see ?valve_start, "Java
# settings"). They live in inst/jvm-flags, with why each is there, shared with the CLI.
valve_java_parameters <- function() {
  lines <- trimws(readLines(system.file("jvm-flags", package = "valve", mustWork = TRUE)))
  lines[nzchar(lines) & !startsWith(lines, "#")]
}

# rJava's own default, which it sets as the java.parameters option when it loads if the option
# is unset: once rJava is loaded, this value cannot be told apart from a user's choice and is
# taken as no choice.
rjava_default_parameters <- "-Xmx512m"

# The flags for a JVM that is not running yet: the user's java.parameters option if they set
# one, valve's otherwise. Must be read before rJava loads, as loading it sets the option.
java_parameters <- function() {
  user <- getOption("java.parameters")
  chosen <- !is.null(user) &&
    !(isNamespaceLoaded("rJava") && identical(as.character(user), rjava_default_parameters))
  if (chosen) user else valve_java_parameters()
}

# Starts the JVM unless it runs already (then the flags are ignored, as rJava can start only one
# JVM per process).
java_start <- function() {
  parameters <- java_parameters()
  rJava::.jinit(parameters = parameters)
  invisible()
}
