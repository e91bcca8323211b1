# The command line: the `valve` launcher shipped in the package runs the engine without R.
cli <- function() system.file("bin", "valve", package = "valve", mustWork = TRUE)

run_cli <- function(args, env = character()) {
  processx::run(cli(), args, env = c("current", env), error_on_status = FALSE, timeout = 120)
}

start_cli <- function(args, env = character(), .local_envir = parent.frame()) {
  skip_if_no_engine()
  port <- httpuv::randomPort()
  p <- processx::process$new(cli(), c(args, "--port", port), env = c("current", env),
                             stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill(), envir = .local_envir)
  url <- paste0("http://127.0.0.1:", port)
  wait_until(function() {
    if (!p$is_alive()) stop("valve exited: ", paste(p$read_all_error_lines(), collapse = "\n"))
    tryCatch(curl::curl_fetch_memory(paste0(url, "/__valve__/ready"))$status_code > 0, error = function(e) FALSE)
  }, "the CLI serves")
  list(process = p, url = url)
}

test_that("--help documents every option with its environment variable", {
  skip_if_no_engine()
  result <- run_cli("--help")
  expect_equal(result$status, 0L)
  for (flag in c("--host", "--port", "--file", "--dir", "--n-max", "--n-min", "--check-unused",
                 "--max-age", "--workers", "VALVE_HOST", "VALVE_N_MAX", "PORT", "Exit status")) {
    expect_match(result$stdout, flag, fixed = TRUE)
  }
})

test_that("a bad option exits 2 and says what is wrong", {
  skip_if_no_engine()
  result <- run_cli(c("--n-max", "many"))
  expect_equal(result$status, 2L)
  expect_match(result$stderr, "--n-max must be a whole number")
  expect_equal(run_cli("--frobnicate")$status, 2L)
  expect_equal(run_cli(c("-f", "no/such/file.R"))$status, 2L)
})

test_that("it serves a plumber file and stops gracefully on SIGTERM, leaving no worker", {
  served <- start_cli(c("-f", normalizePath(test_api()), "-n", "2", "-w", "4"), env = c(VALVE_N_MIN = "2"))
  # The launcher execs java, so the engine's PID is the process's.
  engine <- served$process$get_pid()
  wait_until(function() length(worker_pids(engine)) == 2, "VALVE_N_MIN=2 starts two workers")
  response <- http_get(paste0(served$url, "/pid"))
  expect_equal(response$status, 200L)
  # The CLI handles SIGTERM once it has started (n_min workers ready) and says it serves; the
  # port answers earlier, while the second worker may still be starting.
  output <- character()
  wait_until(function() {
    output <<- c(output, served$process$read_output_lines())
    any(grepl("valve is serving", output, fixed = TRUE))
  }, "the CLI says it serves")

  served$process$signal(tools::SIGTERM)
  served$process$wait(30000)
  expect_equal(served$process$get_exit_status(), 0L)
  expect_match(paste(served$process$read_all_error_lines(), collapse = "\n"), "--workers is accepted for Valve compatibility")
  wait_until(function() length(worker_pids(engine)) == 0, "the workers are gone")
})

test_that("the engine runs with valve's JVM flags, or with VALVE_JAVA_OPTS when set", {
  api <- normalizePath(test_api())
  jvm_args <- function(process) {
    # The launcher execs java, so the process's own command line is the JVM's.
    cmdline <- readBin(file.path("/proc", process$get_pid(), "cmdline"), "raw", 65536)
    strsplit(rawToChar(replace(cmdline, cmdline == as.raw(0), as.raw(10))), "\n")[[1]]
  }
  ours <- start_cli(c("-f", api, "-n", "1"))
  expect_true(all(valve:::valve_java_parameters() %in% jvm_args(ours$process)))
  expect_equal(http_get(paste0(ours$url, "/pid"))$status, 200L)
  ours$process$signal(tools::SIGTERM)
  ours$process$wait(30000)
  expect_equal(ours$process$get_exit_status(), 0L)

  theirs <- start_cli(c("-f", api, "-n", "1"), env = c(VALVE_JAVA_OPTS = "-Xmx300m -Dvalve.test=yes"))
  args <- jvm_args(theirs$process)
  expect_true(all(c("-Xmx300m", "-Dvalve.test=yes") %in% args))
  expect_false(any(valve:::valve_java_parameters() %in% args))
  expect_equal(http_get(paste0(theirs$url, "/pid"))$status, 200L)
})

test_that("`valve local --dir` serves a Faucet-style directory", {
  served <- start_cli(c("local", "--dir", normalizePath(test_path("apis", "faucet"))))
  expect_equal(json(http_get(paste0(served$url, "/who")))$style, "faucet")
  served$process$interrupt()
  served$process$wait(30000)
  expect_equal(served$process$get_exit_status(), 0L)
})

test_that("PORT from the environment is honoured, and a taken port exits 3", {
  skip_if_no_engine()
  port <- httpuv::randomPort()
  p <- processx::process$new(cli(), c("-f", normalizePath(test_api())), env = c("current", PORT = port),
                             stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill())
  url <- paste0("http://127.0.0.1:", port, "/pid")
  wait_until(function() tryCatch(curl::curl_fetch_memory(url)$status_code == 200, error = function(e) FALSE),
             "the CLI listens on PORT")
  taken <- run_cli(c("-f", normalizePath(test_api()), "-p", port))
  expect_equal(taken$status, 3L)
  expect_match(taken$stderr, "cannot listen")
  p$signal(tools::SIGTERM)
  p$wait(30000)
})

test_that("workers that cannot start exit 4 with the worker's error", {
  skip_if_no_engine()
  result <- run_cli(c("-f", normalizePath(test_api("broken.R")), "-p", "0"))
  expect_equal(result$status, 4L)
  expect_match(result$stderr, "unexpected")
})
