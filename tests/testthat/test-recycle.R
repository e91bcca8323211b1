# Recycling: workers replaced after max_requests (with jitter) or above max_worker_memory, with
# no request failing and no recycled process left behind.

test_that("max_requests replaces each worker after that many requests, and no request fails", {
  server <- local_valve(n_min = 1, n_max = 2, max_requests = 3)
  sequential <- lapply(1:10, function(i) http_get(paste0(server$url, "/pid")))
  burst <- http_parallel(rep(paste0(server$url, "/sleep?ms=100"), 12))
  responses <- c(sequential, burst)
  expect_equal(vapply(responses, `[[`, integer(1), "status"), rep(200L, 22))

  pids <- vapply(responses, function(r) json(r)$pid, integer(1))
  expect_lte(max(table(pids)), 3)
  expect_gte(length(unique(pids)), 8)
  expect_match(paste(valve_logs(server), collapse = "\n"), "recycled after 3 requests (max_requests)", fixed = TRUE)
  recycled <- setdiff(pids, valve_workers(server)$pid)
  wait_until(function() !any(vapply(recycled, pid_alive, logical(1))), "every recycled worker has exited")
  expect_true(all(valve_workers(server)$requests <= 3))
})

test_that("max_worker_memory replaces a worker whose memory grew past it after a request", {
  server <- local_valve(n_min = 1, n_max = 1, max_worker_memory = 250)
  small <- vapply(1:3, function(i) json(http_get(paste0(server$url, "/pid")))$pid, integer(1))
  expect_length(unique(small), 1)

  grown <- http_get(paste0(server$url, "/grow?mb=300"))
  expect_equal(grown$status, 200L)
  expect_equal(json(grown)$pid, small[[1]])
  wait_until(function() !pid_alive(small[[1]]), "the worker above the limit exits")

  after <- http_get(paste0(server$url, "/pid"))
  expect_equal(after$status, 200L)
  expect_false(json(after)$pid == small[[1]])
  expect_match(paste(valve_logs(server), collapse = "\n"), "MiB resident, above max_worker_memory (250 MiB)", fixed = TRUE)
})

test_that("recycling limits are checked before anything starts", {
  skip_if_no_engine()
  expect_error(valve_start(test_api(), port = 0, max_requests = -1), class = "valve_error_argument")
  expect_error(valve_start(test_api(), port = 0, max_worker_memory = 1.5), class = "valve_error_argument")
  expect_error(valve_start(test_api(), port = 0, max_requests_jitter = 5), "needs max_requests",
               class = "valve_error_config")
})
