# Several apps behind one port (issue 15): routes by path prefix, from R or a config file, each
# app with its own pool of real plumber workers.

routes_api <- function(name) test_path("apis", "routes", name)

whoami <- function(url, ...) {
  response <- curl::curl_fetch_memory(url, handle = curl::new_handle(timeout = 60, ...))
  list(status = response$status_code, body = jsonlite::fromJSON(rawToChar(response$content)))
}

test_that("two APIs on two prefixes and a root route: the longest prefix wins, stripped", {
  server <- local_valve(
    plumber_file = NULL, n_max = 2,
    routes = list(
      "/api" = routes_api("api/plumber.R"),
      "/admin" = valve_app(routes_api("admin"), n_max = 1),
      "/" = routes_api("root.R")
    )
  )
  api <- whoami(paste0(server$url, "/api/whoami?x=1&y=a%20b"))
  expect_equal(api$status, 200L)
  expect_equal(api$body$app, "api")
  expect_equal(api$body$path, "/whoami")
  expect_equal(api$body$query, "?x=1&y=a%20b")
  expect_equal(api$body$prefix, "/api")

  admin <- whoami(paste0(server$url, "/admin/whoami"))
  expect_equal(admin$body$app, "admin")
  expect_equal(admin$body$path, "/whoami")
  expect_equal(admin$body$prefix, "/admin")

  # The root route takes the rest, as it is; whole segments only.
  root <- whoami(paste0(server$url, "/whoami?z=1"))
  expect_equal(root$body$app, "root")
  expect_equal(root$body$path, "/whoami")
  expect_equal(root$body$prefix, "")
  expect_equal(http_get(paste0(server$url, "/apiwhoami"))$status, 404L)
  expect_match(http_get(paste0(server$url, "/apiwhoami"))$body, "^\\{")  # plumber's own 404, from root

  # Encoded bytes reach the app as the client sent them (plumber 1.2 leaves path parameters
  # encoded): a %2F is not taken for a slash, which would have made it another path.
  expect_equal(whoami(paste0(server$url, "/api/files/a%20b"))$body$name, "a%20b")
  expect_equal(whoami(paste0(server$url, "/api/files/a%2Fb?x=%2F"))$body$name, "a%2Fb")

  # Each route has its own workers.
  workers <- valve_workers(server)
  expect_setequal(unique(workers$route), c("/api", "/admin", "/"))
  expect_true(all(startsWith(workers$name[workers$route == "/api"], "/api worker ")))
  expect_equal(sum(workers$route == "/admin"), 1L)
  expect_false(api$body$pid %in% workers$pid[workers$route != "/api"])
})

test_that("a prefix no route takes is 404 from valve, without a worker", {
  server <- local_valve(
    plumber_file = NULL, n_min = 0, admin_port = 0,
    routes = list("/api" = routes_api("api/plumber.R"), "/admin" = routes_api("admin"))
  )
  missing <- http_get(paste0(server$url, "/nowhere/whoami?x=1"))
  expect_equal(missing$status, 404L)
  expect_match(missing$body, "^valve: no app is served under /nowhere/whoami")
  expect_equal(http_get(paste0(server$url, "/"))$status, 404L)
  expect_equal(nrow(valve_workers(server)), 0L)
  expect_equal(valve_status(server)$pool$started, 0)

  expect_equal(whoami(paste0(server$url, "/api/whoami"))$body$app, "api")
  wait_until(function() sum(unlist(valve_status(server)$requests)) == 3, "the requests are counted")
  status <- valve_status(server)
  expect_equal(status$errors[["404 no_route"]], 2)
  expect_equal(status$routes$prefix, c("/api", "/admin"))
  metrics <- http_get(paste0(server$admin_url, "/metrics"))$body
  expect_match(metrics, 'valve_requests_total{code="200",route="/api"} 1.0', fixed = TRUE)
  expect_match(metrics, 'valve_errors_total{code="404",reason="no_route",route=""} 2.0', fixed = TRUE)
  expect_match(metrics, 'valve_workers{route="/admin",state="idle"} 0.0', fixed = TRUE)
  printed <- capture.output(print(status))
  expect_true(any(grepl("^  /api: 0 busy, 1 idle", printed)))
})

test_that("each route has its own pool and limits: a slow route does not hold the other's workers", {
  server <- local_valve(
    plumber_file = NULL,
    routes = list(
      "/slow" = valve_app(routes_api("api/plumber.R"), n_max = 1, queue_max = 1),
      "/fast" = valve_app(routes_api("admin"), n_min = 2, n_max = 2)
    )
  )
  # Occupies /slow's only worker, and its one queue place.
  results <- list()
  pool <- curl::new_pool()
  for (i in 1:2) {
    local({
      index <- i
      curl::curl_fetch_multi(paste0(server$url, "/slow/sleep?ms=3000"), pool = pool,
                             handle = curl::new_handle(timeout = 60),
                             done = function(r) results[[index]] <<- r$status_code)
    })
  }
  curl::multi_run(pool = pool, timeout = 0.5)
  wait_until(function() valve_status(server)$routes$pool$queued[1] == 1, "a request waits for /slow")
  # /slow is full: one more is refused at once; /fast still answers, from its own workers.
  expect_equal(http_get(paste0(server$url, "/slow/sleep?ms=1"))$status, 503L)
  fast <- http_parallel(rep(paste0(server$url, "/fast/whoami"), 4))
  expect_equal(vapply(fast, `[[`, integer(1), "status"), rep(200L, 4))
  expect_true(all(vapply(fast, function(r) jsonlite::fromJSON(r$body)$app, "") == "admin"))
  expect_equal(valve_status(server)$routes$pool$busy[1], 1L)
  curl::multi_run(pool = pool)
  expect_equal(unlist(results), c(200L, 200L))
  workers <- valve_workers(server)
  expect_equal(sum(workers$route == "/slow"), 1L)
  expect_equal(sum(workers$route == "/fast"), 2L)
})

test_that("plumber's docs work under the prefix", {
  server <- local_valve(plumber_file = NULL, routes = list("/api" = routes_api("api/plumber.R")))
  docs <- http_get(paste0(server$url, "/api/__docs__/"))
  expect_equal(docs$status, 200L)
  # The page finds its spec relative to where the browser is, so under /api/__docs__/ it asks
  # for /api/openapi.json.
  expect_match(docs$body, "window.location.pathname", fixed = TRUE)
  expect_match(docs$body, "openapi.json", fixed = TRUE)
  # The spec, asked for from the docs page, gives the prefixed URL as the server to try calls on.
  referer <- paste0(server$url, "/api/__docs__/")
  spec <- whoami(paste0(server$url, "/api/openapi.json"), referer = referer)
  expect_equal(spec$status, 200L)
  expect_equal(spec$body$servers$url, paste0(server$url, "/api/"))
  expect_true("/whoami" %in% names(spec$body$paths))
})

write_config <- function(lines, dir = withr::local_tempdir(.local_envir = parent.frame())) {
  file.copy(test_path("apis", "routes"), dir, recursive = TRUE)
  path <- file.path(dir, "valve.yml")
  writeLines(lines, path)
  path
}

test_that("valve_start(config =) reads the YAML file, and the arguments given override it", {
  config <- write_config(c(
    "port: 1",           # overridden by local_valve()'s port = 0
    "n_max: 2",
    "routes:",
    "  /api: routes/api/plumber.R",
    "  /admin:",
    "    path: routes/admin",
    "    n_max: 1"
  ))
  server <- local_valve(plumber_file = NULL, config = config, n_min = 1)
  expect_equal(whoami(paste0(server$url, "/api/whoami"))$body$prefix, "/api")
  expect_equal(whoami(paste0(server$url, "/admin/whoami"))$body$app, "admin")
  routes <- valve_status(server)$routes
  expect_equal(routes$prefix, c("/api", "/admin"))
  expect_equal(routes$n_max, c(2L, 1L))
})

test_that("config file mistakes are classed errors naming the key, before anything starts", {
  skip_if_no_engine()
  before <- worker_pids(Sys.getpid())
  unknown <- expect_error(
    valve_start(config = write_config(c("routes:", "  /api:", "    path: routes/api/plumber.R", "    nmax: 2"))),
    class = "valve_error_config"
  )
  expect_match(conditionMessage(unknown), "unknown key 'nmax' in routes./api")
  expect_error(valve_start(config = write_config("n_max: four")), "n_max must be a whole number, not 'four'",
               class = "valve_error_config")
  expect_error(valve_start(config = write_config(c("routes:", "  /api: {path: routes/api/plumber.R, n_min: 3, n_max: 2}"))),
               "routes./api.n_min \\(3\\) must not be larger than routes./api.n_max \\(2\\)", class = "valve_error_config")
  expect_error(valve_start(config = "no/such/valve.yml"), "does not exist", class = "valve_error_config")
  expect_equal(setdiff(worker_pids(Sys.getpid()), before), integer())

  expect_error(valve_start(routes = list("/api" = "no/such.R")), "routes", class = "valve_error_argument")
  expect_error(valve_start(routes = list(routes_api("root.R"))), "named list", class = "valve_error_argument")
  expect_error(valve_start(routes = list("api" = routes_api("root.R")), port = 0), "not a path prefix",
               class = "valve_error_config")
  expect_error(valve_start(test_api(), routes = list("/" = routes_api("root.R"))), "only one of",
               class = "valve_error_argument")
  expect_error(valve_app(routes_api("root.R"), n_max = 0), "n_max", class = "valve_error_argument")
  expect_error(valve_app(routes_api("root.R"), watch = "yes"), "watch", class = "valve_error_argument")
})

test_that("the CLI serves the config file's routes, and refuses a bad one with exit code 2 naming the key", {
  skip_if_no_engine()
  config <- write_config(c("routes:", "  /api: routes/api/plumber.R", "  /: routes/root.R"))
  cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
  port <- httpuv::randomPort()
  p <- processx::process$new(cli, c("--config", config, "--port", port), stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill())
  url <- paste0("http://127.0.0.1:", port)
  wait_until(function() {
    if (!p$is_alive()) stop("valve exited: ", paste(p$read_all_error_lines(), collapse = "\n"))
    tryCatch(curl::curl_fetch_memory(paste0(url, "/api/whoami"))$status_code == 200, error = function(e) FALSE)
  }, "the CLI serves", timeout = 60)
  expect_equal(whoami(paste0(url, "/api/whoami"))$body$prefix, "/api")
  expect_equal(whoami(paste0(url, "/whoami"))$body$app, "root")
  p$signal(tools::SIGTERM)
  p$wait(30000)
  expect_equal(p$get_exit_status(), 0L)

  for (case in list(
    list(yaml = c("routes:", "  /api: {path: routes/api/plumber.R, n_maxx: 2}"), key = "n_maxx"),
    list(yaml = "queue_timeout: soon", key = "queue_timeout must be a number, not 'soon'"),
    list(yaml = c("routes:", "  /api: routes/nowhere.R"), key = "routes./api: .* is neither a file nor a directory")
  )) {
    result <- processx::run(cli, c("--config", write_config(case$yaml)), error_on_status = FALSE, timeout = 60)
    expect_equal(result$status, 2L)
    expect_match(result$stderr, paste0("^valve: .*", case$key, "[^\n]*\n$"))
  }
  missing <- processx::run(cli, c("--config", "no/such/valve.yml"), error_on_status = FALSE, timeout = 60)
  expect_equal(missing$status, 2L)
  expect_match(missing$stderr, "the config file no/such/valve.yml does not exist")
})

test_that("a Shiny app behind a prefix: redirected to its slash, its own cookie, its own max_sessions", {
  server <- local_valve(
    plumber_file = NULL, n_max = 2,
    routes = list(
      "/dash" = valve_app(test_path("apis", "shiny"), max_sessions = 1, n_max = 1),
      "/api" = routes_api("api/plumber.R")
    )
  )
  fetch <- function(path, ...) {
    curl::curl_fetch_memory(paste0(server$url, path), handle = curl::new_handle(timeout = 60, followlocation = FALSE, ...))
  }
  bare <- fetch("/dash?x=1")
  expect_equal(bare$status_code, 302L)
  expect_equal(curl::parse_headers_list(bare$headers)$location, "dash/?x=1")

  page <- fetch("/dash/", httpheader = c(Accept = "text/html"))
  expect_equal(page$status_code, 200L)
  expect_match(rawToChar(page$content), "shiny", ignore.case = TRUE)
  cookie <- curl::parse_headers_list(page$headers)[["set-cookie"]]
  expect_match(cookie, "^valve_session=[^;]+; Path=/dash; HttpOnly; SameSite=Lax$")

  # Each route has its own workers: the API is served beside the app.
  expect_equal(whoami(paste0(server$url, "/api/whoami"))$body$app, "api")
  workers <- valve_workers(server)
  expect_setequal(unique(workers$route), c("/dash", "/api"))
})

test_that("valve_app() checks type and max_sessions up front", {
  expect_error(valve_app(routes_api("root.R"), type = "shiny"), "not a directory", class = "valve_error_argument")
  expect_error(valve_app(test_path("apis", "shiny"), max_sessions = 0), "max_sessions", class = "valve_error_argument")
  expect_error(valve_app(routes_api("admin"), type = "shiny"), "not a Shiny app", class = "valve_error_argument")
  expect_s3_class(valve_app(test_path("apis", "shiny"), type = "shiny"), "valve_app")
})
