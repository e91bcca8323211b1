test_that("a worker killed mid-request gives that request a 502, and later requests succeed", {
  server <- local_valve(n_min = 1, n_max = 1)
  pool <- curl::new_pool()
  result <- NULL
  curl::curl_fetch_multi(
    paste0(server$url, "/sleep?ms=20000"), pool = pool,
    done = function(r) result <<- r, fail = function(e) result <<- e
  )
  curl::multi_run(timeout = 0.2, pool = pool)
  wait_until(function() any(valve_workers(server)$busy), "the request reaches a worker")
  victim <- valve_workers(server)$pid[valve_workers(server)$busy]

  tools::pskill(victim, tools::SIGKILL)
  curl::multi_run(pool = pool)
  expect_equal(result$status_code, 502L)
  expect_match(rawToChar(result$content), "failed before answering")

  after <- http_get(paste0(server$url, "/pid"))
  expect_equal(after$status, 200L)
  expect_false(json(after)$pid == victim)
  expect_false(victim %in% valve_workers(server)$pid)
})

test_that("valve_stop() leaves no worker process behind", {
  server <- local_valve(n_min = 3, n_max = 3)
  pids <- valve_workers(server)$pid
  expect_length(pids, 3)
  expect_true(all(vapply(pids, pid_alive, logical(1))))
  valve_stop(server)
  expect_false(any(vapply(pids, pid_alive, logical(1))))
  expect_error(curl::curl_fetch_memory(server$url), class = "error")
})

test_that("workers run in their own process group, so Ctrl-C in the console cannot reach them", {
  server <- local_valve()
  pid <- valve_workers(server)$pid
  pgid <- function(p) as.integer(system2("ps", c("-o", "pgid=", "-p", p), stdout = TRUE))
  expect_false(pgid(pid) == pgid(Sys.getpid()))
  expect_equal(pgid(pid), pid)
})

test_that("workers exit by themselves when the R process that started them is killed", {
  skip_if_no_engine()
  pid_file <- withr::local_tempfile()
  script <- sprintf(
    'server <- valve::valve_start(%s, port = 0, n_min = 2, n_max = 2)
     writeLines(as.character(valve::valve_workers(server)$pid), %s)
     Sys.sleep(600)',
    deparse(normalizePath(test_api())), deparse(pid_file)
  )
  parent <- processx::process$new(rscript(), c("-e", script), stdout = "|", stderr = "|")
  withr::defer(parent$kill())
  wait_until(function() file.exists(pid_file) && length(readLines(pid_file)) == 2, "the child reports its workers")
  pids <- as.integer(readLines(pid_file))
  expect_true(all(vapply(pids, pid_alive, logical(1))))

  parent$signal(tools::SIGKILL)
  wait_until(function() !any(vapply(pids, pid_alive, logical(1))), "orphaned workers notice and exit", timeout = 20)
  succeed()
})

test_that("valve_run() serves until interrupted, then stops every worker and returns", {
  skip_if_no_engine()
  port_file <- withr::local_tempfile()
  script <- sprintf(
    'port <- httpuv::randomPort()
     writeLines(as.character(port), %s)
     valve::valve_run(%s, port = port, n_min = 2)
     cat("valve_run returned\n")',
    deparse(port_file), deparse(normalizePath(test_api()))
  )
  child <- processx::process$new(rscript(), c("-e", script), stdout = "|", stderr = "2>&1")
  withr::defer(child$kill())
  output <- character()
  wait_until(function() {
    output <<- c(output, child$read_output_lines())
    any(grepl("valve is serving", output)) && any(grepl("worker 2 ready", output))
  }, "valve_run() says it serves")
  url <- paste0("http://127.0.0.1:", readLines(port_file))
  pid <- json(http_get(paste0(url, "/pid")))$pid

  child$interrupt()
  child$wait(30000)
  output <- paste(c(output, child$read_all_output_lines()), collapse = "\n")
  expect_false(child$is_alive())
  expect_match(output, "valve is serving <?http://127.0.0.1:")
  expect_match(output, "[valve] worker 1 ready", fixed = TRUE)
  expect_match(output, "Stopping valve.", fixed = TRUE)
  expect_match(output, "valve_run returned")
  expect_false(pid_alive(pid))
})

test_that("dropping the handle stops the engine and its workers when it is garbage collected", {
  skip_if_no_engine()
  server <- valve_start(test_api(), port = 0, n_min = 2)
  pids <- valve_workers(server)$pid
  url <- server$url
  rm(server)
  gc()
  wait_until(function() !any(vapply(pids, pid_alive, logical(1))), "the finalizer stops the workers")
  expect_error(curl::curl_fetch_memory(url), class = "error")
})

test_that("a worker silent past request_timeout gives 504 and is stopped and replaced", {
  server <- local_valve(n_min = 1, n_max = 1, request_timeout = 1)
  stuck <- valve_workers(server)$pid
  response <- http_get(paste0(server$url, "/sleep?ms=30000"))
  expect_equal(response$status, 504L)
  wait_until(function() !pid_alive(stuck), "the silent worker is stopped")
  after <- http_get(paste0(server$url, "/pid"))
  expect_equal(after$status, 200L)
  expect_false(json(after)$pid == stuck)
})

test_that("valve_stop() lets a request in flight finish and leaves no worker", {
  server <- local_valve(n_min = 1, n_max = 1)
  pid <- valve_workers(server)$pid
  pool <- curl::new_pool()
  result <- NULL
  curl::curl_fetch_multi(paste0(server$url, "/sleep?ms=1500"), pool = pool,
    done = function(r) result <<- r, fail = function(e) result <<- e)
  curl::multi_run(timeout = 0.2, pool = pool)
  wait_until(function() any(valve_workers(server)$busy), "the request reaches a worker")
  valve_stop(server, grace = 30)
  curl::multi_run(pool = pool)
  expect_equal(result$status_code, 200L)
  expect_false(pid_alive(pid))
})

test_that("q() in the R session that started valve leaves no worker behind", {
  skip_if_no_engine()
  pid_file <- withr::local_tempfile()
  script <- sprintf(
    'server <- valve::valve_start(%s, port = 0, n_min = 2, n_max = 2)
     writeLines(as.character(valve::valve_workers(server)$pid), %s)
     q(save = "no")',
    deparse(normalizePath(test_api())), deparse(pid_file)
  )
  result <- processx::run(rscript(), c("-e", script), error_on_status = FALSE)
  expect_equal(result$status, 0L)
  pids <- as.integer(readLines(pid_file))
  expect_length(pids, 2)
  wait_until(function() !any(vapply(pids, pid_alive, logical(1))), "workers are gone after q()", timeout = 10)
  succeed()
})
