# A short chaos run for `make check`; tools/soak.R runs the long one. 16 clients keep calling
# while a random busy worker is killed every second: only requests in flight on killed workers
# may fail, and they must fail with 502; the pool must be back at its size afterwards.
# Run with workers started from scratch and with preforked ones, which are not the engine's
# children (their exits reach it another way).
expect_chaos_fails_only_killed_requests <- function(preload) {
  server <- local_valve(n_min = 4, n_max = 4, preload = preload, .local_envir = parent.frame())
  url <- paste0(server$url, "/sleep?ms=50")
  statuses <- integer()
  pool <- curl::new_pool(total_con = 32, host_con = 32)
  target_kills <- 6
  kills <- 0
  running <- function() kills < target_kills
  fire <- function() {
    curl::curl_fetch_multi(url, pool = pool, handle = curl::new_handle(timeout = 60),
      done = function(r) {
        statuses <<- c(statuses, r$status_code)
        if (running()) fire()
      },
      fail = function(e) {
        statuses <<- c(statuses, NA_integer_)
        if (running()) fire()
      })
  }
  for (i in 1:16) fire()
  give_up <- Sys.time() + 120
  while (running() && Sys.time() < give_up) {
    curl::multi_run(timeout = 1, pool = pool)
    busy <- valve_workers(server)
    busy <- busy$pid[busy$busy]
    if (length(busy) > 0) {
      tools::pskill(busy[sample.int(length(busy), 1)], tools::SIGKILL)
      kills <- kills + 1
    }
  }
  curl::multi_run(pool = pool)

  expect_equal(kills, target_kills)
  expect_false(anyNA(statuses))
  expect_true(all(statuses %in% c(200L, 502L)))
  # One request per worker: a kill can fail at most the one request it interrupted.
  expect_lte(sum(statuses == 502L), kills)
  expect_gt(sum(statuses == 200L), 10 * kills)
  wait_until(function() nrow(valve_workers(server)) == 4, "the pool is back at its size")
  expect_true(all(vapply(valve_workers(server)$pid, pid_alive, logical(1))))
}

test_that("killing random workers under load fails only their in-flight requests, with 502", {
  expect_chaos_fails_only_killed_requests(preload = FALSE)
})

test_that("killing random preforked workers under load fails only their in-flight requests, with 502", {
  expect_chaos_fails_only_killed_requests(preload = TRUE)
})
