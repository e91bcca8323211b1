test_that("dir = with a Faucet-style entrypoint.R that starts the server itself", {
  server <- local_valve(dir = test_path("apis", "faucet"), plumber_file = NULL)
  response <- http_get(paste0(server$url, "/who"))
  expect_equal(response$status, 200L)
  expect_equal(json(response)$style, "faucet")
  # The guard is in plumber's class, so it covers a router the entrypoint started itself.
  expect_equal(http_get(sprintf("http://127.0.0.1:%d/who", valve_workers(server)$port))$status, 403L)
})

test_that("dir = with an entrypoint.R that returns a router, and every port convention set", {
  server <- local_valve(dir = test_path("apis", "router"), plumber_file = NULL)
  seen <- json(http_get(paste0(server$url, "/who")))
  expect_equal(seen$style, "router")
  port <- as.character(valve_workers(server)$port)
  expect_equal(unlist(seen$env), c(VALVE_PORT = port, FAUCET_PORT = port, PLUMBER_PORT = port))
  expect_equal(as.character(seen$option), port)
})

test_that("dir = without an entrypoint.R serves its plumber.R", {
  server <- local_valve(dir = test_path("apis", "plain"), plumber_file = NULL)
  expect_equal(json(http_get(paste0(server$url, "/who")))$style, "plain")
})

test_that("api = builds the router in each worker by calling the function", {
  server <- local_valve(
    api = function() plumber::pr() |> plumber::pr_get("/who", function() list(style = "api", pid = Sys.getpid())),
    plumber_file = NULL, n_min = 2, n_max = 2
  )
  results <- http_parallel(rep(paste0(server$url, "/who"), 4))
  expect_equal(unique(vapply(results, function(r) json(r)$style, "")), "api")
})

test_that("the API sources are checked before anything starts", {
  expect_error(valve_start(test_api(), dir = test_path("apis", "plain")), "only one of", class = "valve_error_argument")
  expect_error(valve_start(dir = "no/such/dir"), "existing directory", class = "valve_error_argument")
  expect_error(valve_start(dir = test_path("apis", "faucet", "..", "..")), "neither", class = "valve_error_argument")
  expect_error(valve_start(api = "not a function"), "must be a function", class = "valve_error_argument")
})

test_that("api = that does not return a router fails fast with a clear error", {
  skip_if_no_engine()
  error <- expect_error(valve_start(api = function() 42, port = 0), class = "valve_error_startup")
  expect_match(conditionMessage(error), "must return a plumber router")
})
