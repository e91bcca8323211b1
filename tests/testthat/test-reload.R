# Rolling reload: new workers with the current code, old ones finish their requests and stop,
# nothing fails, the port never closes; broken new code leaves the old workers serving.

# A copy of the test API in its own directory, with GET /version answering `version`; returns
# its path. `write_version()` rewrites it, as an editor's save would.
local_versioned_api <- function(version = 1, .local_envir = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = .local_envir)
  path <- file.path(dir, "plumber.R")
  write_version(path, version)
  path
}

write_version <- function(path, version) {
  writeLines(c(readLines(test_api()), "", "#* @get /version", sprintf("function() list(version = %s)", version)), path)
}

version_of <- function(url) json(http_get(paste0(url, "/version")))$version

# Clients in a child R, `clients` at a time, until told to stop; each status goes to a file.
local_load <- function(url, clients = 4, .local_envir = parent.frame()) {
  dir <- withr::local_tempdir(.local_envir = .local_envir)
  script <- sprintf(
    'pool <- curl::new_pool(total_con = 16, host_con = 16)
     statuses <- file(%s, "w")
     fire <- function() {
       if (file.exists(%s)) return()
       curl::curl_fetch_multi(%s, pool = pool, handle = curl::new_handle(timeout = 60),
         done = function(r) { writeLines(as.character(r$status_code), statuses); flush(statuses); fire() },
         fail = function(e) { writeLines(paste("failed:", e), statuses); flush(statuses); fire() })
     }
     for (i in seq_len(%d)) fire()
     curl::multi_run(pool = pool)
     close(statuses)
     file.create(%s)',
    deparse(file.path(dir, "statuses")), deparse(file.path(dir, "stop")), deparse(paste0(url, "/sleep?ms=30")),
    clients, deparse(file.path(dir, "done"))
  )
  child <- processx::process$new(rscript(), c("-e", script), stdout = "|", stderr = "2>&1")
  withr::defer(child$kill(), envir = .local_envir)
  statuses <- function() if (file.exists(file.path(dir, "statuses"))) readLines(file.path(dir, "statuses")) else character()
  list(
    statuses = statuses,
    stop = function() {
      file.create(file.path(dir, "stop"))
      wait_until(function() file.exists(file.path(dir, "done")), "the clients finish")
      statuses()
    }
  )
}

test_that("valve_reload() under load: new code serves, every answer is 200, every old worker is gone", {
  api <- local_versioned_api(1)
  server <- local_valve(plumber_file = api, n_min = 2, n_max = 2)
  expect_equal(version_of(server$url), 1L)
  old <- valve_workers(server)$pid
  load <- local_load(server$url)
  wait_until(function() length(load$statuses()) >= 20, "the load is running")

  write_version(api, 2)
  expect_identical(valve_reload(server), server)
  wait_until(function() sum(valve_workers(server)$requests) >= 20, "the new workers serve the load")
  served <- length(load$statuses())
  wait_until(function() length(load$statuses()) >= served + 20, "more requests are answered after the reload")
  statuses <- load$stop()

  expect_gte(length(statuses), 60)
  expect_equal(unique(statuses), "200")
  expect_equal(version_of(server$url), 2L)
  expect_length(intersect(valve_workers(server)$pid, old), 0)
  wait_until(function() !any(vapply(old, pid_alive, logical(1))), "every old worker has exited")
  log <- paste(valve_logs(server), collapse = "\n")
  expect_match(log, "reloaded: new workers serve")
  expect_match(log, "replaced by a reload")
})

test_that("a reload whose new code cannot start keeps the old workers serving and says why", {
  api <- local_versioned_api(1)
  server <- local_valve(plumber_file = api, n_min = 1, n_max = 2)
  old <- valve_workers(server)$pid
  writeLines(readLines(test_api("broken.R")), api)

  error <- expect_error(valve_reload(server), class = "valve_error_reload")
  expect_s3_class(error, "valve_error")
  expect_match(conditionMessage(error$parent), "could not start, so the running ones keep serving")
  expect_match(conditionMessage(error$parent), "unexpected")
  expect_equal(version_of(server$url), 1L)
  expect_equal(valve_workers(server)$pid, old)
  expect_match(paste(valve_logs(server), collapse = "\n"), "the reload failed, so the running workers keep serving")

  write_version(api, 3)
  valve_reload(server)
  expect_equal(version_of(server$url), 3L)
  wait_until(function() !pid_alive(old), "the old worker exits once the fixed code serves")
})

test_that("watch = TRUE reloads when an .R file of the API changes, and names the file", {
  api <- local_versioned_api(1)
  server <- local_valve(plumber_file = api, n_min = 1, n_max = 2, watch = TRUE)
  expect_equal(version_of(server$url), 1L)
  writeLines("# not code", file.path(dirname(api), "notes.txt"))
  write_version(api, 2)
  wait_until(function() identical(version_of(server$url), 2L), "the edited code serves", timeout = 60)
  log <- paste(valve_logs(server), collapse = "\n")
  expect_match(log, "reloading (plumber.R changed)", fixed = TRUE)
  expect_no_match(log, "notes.txt", fixed = TRUE)
})

test_that("valve_reload() and watch refuse what they cannot use", {
  skip_if_no_engine()
  expect_error(valve_reload("server"), class = "valve_error_argument")
  expect_error(valve_start(test_api(), port = 0, watch = NA), class = "valve_error_argument")
  expect_error(valve_start(upstream = "http://127.0.0.1:1", port = 0, watch = TRUE), "service mode has none",
               class = "valve_error_config")
})

test_that("SIGHUP makes the command line reload, and it still stops cleanly", {
  api <- local_versioned_api(1)
  cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
  port <- httpuv::randomPort()
  p <- processx::process$new(cli, c("-f", api, "-p", port), stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill())
  url <- paste0("http://127.0.0.1:", port)
  output <- character()
  wait_until(function() {
    if (!p$is_alive()) stop("valve exited: ", paste(p$read_all_error_lines(), collapse = "\n"))
    output <<- c(output, p$read_output_lines())
    any(grepl("SIGHUP reloads", output, fixed = TRUE))
  }, "the CLI serves and handles SIGHUP")
  engine <- p$get_pid()
  expect_equal(version_of(url), 1L)
  old <- worker_pids(engine)

  write_version(api, 2)
  p$signal(tools::SIGHUP)
  wait_until(function() identical(version_of(url), 2L), "the new code serves", timeout = 60)
  wait_until(function() !any(vapply(old, pid_alive, logical(1))), "the old worker exits")

  p$signal(tools::SIGTERM)
  p$wait(30000)
  expect_equal(p$get_exit_status(), 0L)
  expect_match(paste(p$read_all_error_lines(), collapse = "\n"), "reloading (SIGHUP)", fixed = TRUE)
  wait_until(function() length(worker_pids(engine)) == 0, "the workers are gone")
})
