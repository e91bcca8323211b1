test_that("four concurrent requests run at once on four distinct workers", {
  server <- local_valve(n_min = 4, n_max = 4)
  results <- http_parallel(rep(paste0(server$url, "/sleep?ms=1000"), 4))

  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 4))
  runs <- do.call(rbind, lapply(results, function(r) as.data.frame(json(r))))
  expect_equal(length(unique(runs$pid)), 4)
  # All four ran in parallel: each one started before every other one finished.
  expect_true(max(runs$started) < min(runs$finished))

  workers <- valve_workers(server)
  expect_setequal(workers$pid, runs$pid)
  expect_equal(workers$max_in_flight, rep(1L, 4))
})

test_that("the API's own count shows two requests at once when they reach one process", {
  # Checks the instrument the next test relies on: plumber alone, without valve, takes a second
  # request while /hold holds the first, and the API counts both. (Held until both arrived.)
  skip_on_cran()
  port <- httpuv::randomPort()
  plumber <- processx::process$new(rscript(), c("-e", sprintf(
    "plumber::pr_run(plumber::plumb(%s), host = '127.0.0.1', port = %d, docs = FALSE, quiet = TRUE)",
    deparse(normalizePath(test_api())), port
  )), stdout = NULL, stderr = NULL)
  withr::defer(plumber$kill())
  url <- sprintf("http://127.0.0.1:%d", port)
  wait_until(function() !inherits(try(http_get(paste0(url, "/pid")), silent = TRUE), "try-error"), "plumber answers")

  results <- http_parallel(rep(paste0(url, "/hold?ms=30000&until=2"), 2))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 2))
  expect_equal(vapply(results, function(r) json(r)$max_in_flight, integer(1)), c(2L, 2L))
})

test_that("a worker never has two requests at once, even when requests outnumber workers", {
  server <- local_valve(n_min = 2, n_max = 2)
  # /hold leaves the worker free to take more requests while it holds one; only valve's queue
  # keeps the other six away until the worker has answered.
  results <- http_parallel(rep(paste0(server$url, "/hold?ms=300"), 8))

  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 8))
  seen <- do.call(rbind, lapply(results, function(r) as.data.frame(json(r))))
  expect_equal(max(seen$max_in_flight), 1L)
  expect_setequal(seen$pid, valve_workers(server)$pid)
  # valve's own counter agrees with what the workers saw.
  expect_equal(valve_workers(server)$max_in_flight, c(1L, 1L))
  expect_equal(sum(valve_workers(server)$requests), 8)
})

test_that("the pool grows to n_max under load and shrinks back to n_min when idle", {
  # max_age leaves room for a slow start: the first worker must not age out before we count three.
  server <- local_valve(n_min = 1, n_max = 3, max_age = 3, check_unused = 0.2)
  expect_equal(nrow(valve_workers(server)), 1)

  results <- http_parallel(rep(paste0(server$url, "/sleep?ms=1500"), 3))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 3))
  expect_equal(nrow(valve_workers(server)), 3)
  grown <- valve_workers(server)$pid

  wait_until(function() nrow(valve_workers(server)) == 1, "the pool is back at n_min")
  stopped <- setdiff(grown, valve_workers(server)$pid)
  expect_length(stopped, 2)
  wait_until(function() !any(vapply(stopped, pid_alive, logical(1))), "idle workers have exited")
  expect_match(paste(valve_logs(server), collapse = "\n"), "idle for more than 3 s")
})

test_that("n_min = 0 starts no worker until the first request, and reaps down to none", {
  server <- local_valve(n_min = 0, n_max = 2, max_age = 1, check_unused = 0.2)
  expect_equal(nrow(valve_workers(server)), 0)
  expect_equal(worker_pids(Sys.getpid()), integer())

  cold <- http_get(paste0(server$url, "/pid"))
  expect_equal(cold$status, 200L)
  first <- json(cold)$pid
  expect_true(first %in% valve_workers(server)$pid)

  wait_until(function() nrow(valve_workers(server)) == 0, "every idle worker is reaped")
  wait_until(function() !pid_alive(first), "the reaped worker exits")
  again <- http_get(paste0(server$url, "/pid"))
  expect_equal(again$status, 200L)
  expect_false(json(again)$pid == first)
})

test_that("n_min = 0 with an API that cannot start answers 503 with the worker's error", {
  server <- local_valve(plumber_file = test_api("broken.R"), n_min = 0, n_max = 1)
  response <- http_get(paste0(server$url, "/pid"))
  expect_equal(response$status, 503L)
  expect_match(response$body, "no worker could be started")
  expect_match(paste(valve_logs(server), collapse = "\n"), "a worker failed to start")
})

test_that("requests pass through with their bodies", {
  server <- local_valve()
  body <- as.raw(rep(1:255, length.out = 3e6))
  handle <- curl::new_handle(post = TRUE, postfieldsize = length(body), postfields = body)
  curl::handle_setheaders(handle, "Content-Type" = "application/octet-stream")
  response <- curl::curl_fetch_memory(paste0(server$url, "/echo"), handle = handle)
  expect_equal(response$status_code, 200L)
  expect_equal(jsonlite::fromJSON(rawToChar(response$content))$bytes, length(body))

  expect_equal(http_get(paste0(server$url, "/nope"))$status, 404L)
})

test_that("worker output reaches valve_logs() tagged with the worker's name", {
  server <- local_valve()
  pid <- json(http_get(paste0(server$url, "/say?text=ping-from-test")))$pid
  name <- valve_workers(server)$name[valve_workers(server)$pid == pid]
  seen <- character()
  wait_until(
    function() {
      seen <<- c(seen, valve_logs(server))
      any(grepl(paste0("[", name, "] said: ping-from-test"), seen, fixed = TRUE))
    },
    "the worker's line is logged"
  )
  expect_true(any(grepl(paste0("[valve] ", name, " ready in"), seen, fixed = TRUE)))
})

test_that("the handle prints its address, state and workers", {
  server <- local_valve(n_min = 2, n_max = 5)
  expect_match(format(server)[1], paste0("^<valve_server> ", server$url, " \\(running\\)$"))
  expect_match(format(server)[2], "0 busy, 2 idle, 0 starting \\(n_min 2, n_max 5\\); 0 requests queued")
  expect_output(print(server), "valve_server")
  valve_stop(server)
  expect_match(format(server)[1], "\\(stopped\\)$")
})
