test_that("bad arguments are classed errors that name the argument, before anything starts", {
  api <- test_api()
  expect_error(valve_start("no/such/file.R"), class = "valve_error_argument")
  expect_error(valve_start(test_path("apis")), "does not exist", class = "valve_error_argument")
  expect_error(valve_start(api, n_max = 0), "n_max", class = "valve_error_argument")
  expect_error(valve_start(api, n_min = 4, n_max = 2), "n_min", class = "valve_error_argument")
  expect_error(valve_start(api, n_max = "4"), "n_max", class = "valve_error_argument")
  expect_error(valve_start(api, port = 70000), "port", class = "valve_error_argument")
  expect_error(valve_start(api, port = 1.5), "port", class = "valve_error_argument")
  expect_error(valve_start(api, host = "not a host"), "host", class = "valve_error_argument")
  expect_error(valve_start(api, max_age = -1), "max_age", class = "valve_error_argument")
  expect_error(valve_start(api, check_unused = NA), "check_unused", class = "valve_error_argument")
  expect_error(valve_start(api, queue_max = -1), "queue_max", class = "valve_error_argument")
  expect_error(valve_start(api, queue_timeout = 0), "queue_timeout", class = "valve_error_argument")
  expect_error(valve_start(api, request_timeout = Inf), "request_timeout", class = "valve_error_argument")
  expect_error(valve_start(api, client_timeout = "30"), "client_timeout", class = "valve_error_argument")
  expect_error(valve_start(api, max_body_size = -1), "max_body_size", class = "valve_error_argument")
  expect_error(valve_start(api, 3000), "host", class = "valve_error_argument")
  expect_error(
    valve_start(api, "127.0.0.1", 0, 1, 3, 10, 300, 1000, 60, 300, 60, 1e6, 30, NULL, NULL, NULL, 1, 5, 0, 0, 0,
                FALSE, FALSE, NULL, TRUE, "auto", 20, NULL, NULL, TRUE),
    "must be named", class = "valve_error_argument"
  )
  expect_error(valve_start(api, quiet = TRUE), "quiet", class = "valve_error_argument")
  expect_error(valve_start(api, type = "shiny"), "says what .*dir", class = "valve_error_argument")
  expect_error(valve_start(api, type = "flask"), "type", class = "valve_error_argument")
  expect_error(valve_start(api, max_sessions = 0), "max_sessions", class = "valve_error_argument")
  expect_error(valve_start(dir = test_path("apis"), type = "shiny"), "not a Shiny app", class = "valve_error_argument")
  expect_error(valve_stop("server"), "valve_start", class = "valve_error_argument")
})

test_that("a plumber file that does not parse fails fast with the worker's own error", {
  skip_if_no_engine()
  error <- expect_error(
    valve_start(test_api("broken.R"), port = 0),
    class = "valve_error_startup"
  )
  expect_s3_class(error, "valve_error")
  expect_match(conditionMessage(error), "could not start its R workers")
  expect_match(conditionMessage(error), "exited with status 1")
  expect_match(conditionMessage(error), "unexpected")
})

test_that("an API whose package is missing fails fast with the worker's own error", {
  skip_if_no_engine()
  api <- withr::local_tempfile(fileext = ".R", lines = c(
    "library(valvenosuchpackage)",
    "#* @get /x",
    "function() 1"
  ))
  error <- expect_error(valve_start(api, port = 0, n_min = 2), class = "valve_error_startup")
  expect_match(conditionMessage(error), "there is no package called .valvenosuchpackage.")
})

test_that("a worker that exits at once fails fast with its exit status, and nothing is left running", {
  skip_if_no_engine()
  api <- withr::local_tempfile(fileext = ".R", lines = c(
    "cat('giving up\\n'); quit(save = 'no', status = 3)"
  ))
  before <- worker_pids(Sys.getpid())
  error <- expect_error(valve_start(api, port = 0), class = "valve_error_startup")
  expect_match(conditionMessage(error), "exited with status 3")
  expect_match(conditionMessage(error), "giving up")
  expect_equal(setdiff(worker_pids(Sys.getpid()), before), integer())
})

# What the user sees for an error: its class, the function that reports it, and the message.
show_error <- function(expr) {
  error <- tryCatch(expr, error = identity)
  writeLines(format(error, backtrace = FALSE))
}

test_that("argument errors read naturally and name the function the user called", {
  # The directory holds a plumber.R, so the default plumber_file exists and the argument is
  # what gets reported.
  withr::local_dir(test_path("apis"))
  expect_snapshot({
    show_error(valve_run(n_max = 0))
    show_error(valve_start(n_max = 0))
    show_error(valve_run(n_max = "4"))
    show_error(valve_run(port = 1.5))
    show_error(valve_run(port = 70000))
    show_error(valve_run(max_age = -1))
    show_error(valve_run(check_unused = NA))
    show_error(valve_run(request_timeout = Inf))
    show_error(valve_run(queue_max = c(1, 2)))
    show_error(valve_run(host = 3000))
    show_error(valve_run(n_min = 4, n_max = 2))
    show_error(valve_run(quiet = TRUE))
    show_error(valve_run(upstream = "api:8000"))
    show_error(valve_run(dir = 1))
    show_error(valve_stop("server", grace = 1))
    show_error(valve_stop(structure(list(), class = "valve_server"), grace = -1))
  })
})

test_that("valve_run() reports errors as its own, with their class and the call as the user wrote it", {
  withr::local_dir(test_path("apis"))
  error <- expect_error(valve_run(n_max = 0), class = "valve_error_argument")
  expect_identical(error$call, quote(valve_run(n_max = 0)))
  error <- expect_error(valve_start(n_max = 0), class = "valve_error_argument")
  expect_identical(error$call, quote(valve_start(n_max = 0)))
  # valve_start() called from any other function still reports itself.
  wrapper <- function() valve_start(n_max = 0)
  error <- expect_error(wrapper(), class = "valve_error_argument")
  expect_identical(error$call, quote(valve_start(n_max = 0)))
})

test_that("valve_run() without plumber_file lets dir, api and upstream stand alone", {
  # Each of these would be "Give only one of ..." if valve_run() passed its default plumber_file on.
  error <- expect_error(valve_run(dir = test_path("apis", "plain"), n_max = 0), class = "valve_error_argument")
  expect_match(conditionMessage(error), "`n_max` must be a whole number", fixed = TRUE)
  error <- expect_error(valve_run(api = function() plumber::pr(), n_max = 0), class = "valve_error_argument")
  expect_match(conditionMessage(error), "`n_max` must be a whole number", fixed = TRUE)
  error <- expect_error(valve_run(upstream = "http://api:8000", per_pod = 0), class = "valve_error_argument")
  expect_match(conditionMessage(error), "`per_pod` must be a whole number", fixed = TRUE)
  # Given explicitly, it is one source too many.
  expect_error(valve_run(test_api(), dir = test_path("apis", "plain")), "only one of", class = "valve_error_argument")
  expect_error(valve_run("plumber.R", upstream = "http://api:8000"), "only one of", class = "valve_error_argument")
})

test_that("a port that is taken is a classed error that suggests port = 0 and keeps the Java exception", {
  server <- local_valve()
  port <- as.integer(sub(".*:", "", server$url))
  error <- expect_error(valve_start(test_api(), port = port), class = "valve_error_bind")
  expect_s3_class(error, "valve_error")
  expect_match(conditionMessage(error), "could not listen on the requested address")
  expect_match(conditionMessage(error), "use `port = 0`", fixed = TRUE)
  expect_match(conditionMessage(error), paste0("cannot listen on 127.0.0.1:", port))
  expect_identical(error$call[[1]], quote(valve_start))

  # The parent is the engine's Java exception itself, not a copy of its text.
  java <- error$parent
  expect_s3_class(java, "ValveException")
  expect_s4_class(java$jobj, "jobjRef")
  expect_equal(java$jobj$getClass()$getName(), "dev.valve.ValveException")
  expect_equal(java$jobj$kind(), "bind")
  expect_equal(conditionMessage(java), java$jobj$getMessage())
  # rlang can show it: the message, the parent and the backtrace print without touching Java.
  expect_match(paste(format(error), collapse = "\n"), "Caused by error")

  # Through valve_run() the same error is valve_run()'s.
  error <- expect_error(valve_run(test_api(), port = port), class = "valve_error_bind")
  expect_identical(error$call[[1]], quote(valve_run))
  expect_equal(error$parent$jobj$kind(), "bind")
})

test_that("with a JVM older than 21 the package loads and valve_start() explains the fix", {
  skip_if_no_engine()
  java17 <- Filter(
    function(home) file.exists(file.path(home, "lib", "server", "libjvm.so")),
    Sys.glob("/usr/lib/jvm/java-17-openjdk-*")
  )
  if (length(java17) == 0) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop("a Java 17 runtime is needed for this test")
    skip("no Java 17 runtime to test with")
  }
  script <- sprintf(
    'library(valve)
     cat("loaded\n")
     tryCatch(valve_start(%s, port = 0), valve_error_java = function(e) cat(class(e), conditionMessage(e), sep = "\n"))',
    deparse(normalizePath(test_api()))
  )
  result <- processx::run(
    rscript(), c("-e", script),
    env = c("current", JAVA_HOME = java17[[1]]), error_on_status = FALSE
  )
  output <- paste(result$stdout, result$stderr)
  expect_match(output, "loaded")
  expect_match(output, "valve_error_java")
  expect_match(output, "needs Java 21 or newer, but rJava runs Java 17")
  expect_match(output, "JAVA_HOME")
  expect_match(output, "R CMD javareconf")
  expect_match(output, "must be set before R starts")
})
