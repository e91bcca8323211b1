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
    valve_start(api, "127.0.0.1", 0, 1, 3, 10, 300, 1000, 60, 300, 60, 1e6, 30, NULL, NULL, NULL, 1, 5, TRUE),
    "must be named", class = "valve_error_argument"
  )
  expect_error(valve_start(api, quiet = TRUE), "quiet", class = "valve_error_argument")
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
  before <- worker_pids()
  error <- expect_error(valve_start(api, port = 0), class = "valve_error_startup")
  expect_match(conditionMessage(error), "exited with status 3")
  expect_match(conditionMessage(error), "giving up")
  expect_equal(setdiff(worker_pids(), before), integer())
})

test_that("a port that is taken is a classed error", {
  server <- local_valve()
  port <- as.integer(sub(".*:", "", server$url))
  expect_error(valve_start(test_api(), port = port), "cannot listen", class = "valve_error_bind")
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
})
