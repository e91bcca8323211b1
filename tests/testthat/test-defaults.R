# valve_start()'s formals are the defaults users read in ?valve_start; the engine (and the
# command line, which uses it) has its own. They must not drift apart.
test_that("valve_start()'s defaults are the engine's own", {
  skip_if_no_engine()
  engine <- valve:::engine_defaults()
  arguments <- c(
    "host", "port", "n_min", "n_max", "check_unused", "max_age", "queue_max", "queue_timeout",
    "request_timeout", "startup_timeout", "max_body_size", "client_timeout", "max_requests",
    "max_requests_jitter", "max_worker_memory", "watch", "preload", "per_pod", "resolve_interval",
    "admin_port", "access_log"
  )
  expect_equal(setdiff(arguments, names(engine)), character())

  formals <- formals(valve_start)
  expect_equal(setdiff(arguments, names(formals)), character())
  # Defaults are expressions (256 * 1024^2): evaluate them as R would.
  r_defaults <- lapply(formals[arguments], eval, envir = baseenv())
  expect_equal(r_defaults, engine[arguments])

  # valve_run() takes them through `...` from valve_start(): no defaults of its own to drift.
  expect_equal(intersect(names(formals(valve_run)), arguments), character())
})
