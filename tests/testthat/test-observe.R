# Watching valve: the access log, request ids, the admin listener's metrics, probes and status
# page, valve_status(). Counts are compared with the requests each test sent.

# A tool from a Debian package the Makefile installs: outside `make check` a missing one skips.
local_tool <- function(name) {
  path <- Sys.which(name)
  if (!nzchar(path)) {
    why <- paste0(name, " is not installed (make check installs it)")
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop(why, call. = FALSE)
    skip(why)
  }
  unname(path)
}

# The combined log format, then valve's fields, after the log's own time and tag.
access_pattern <- paste0(
  '^\\S+ \\[access\\] (\\S+) - - \\[([^]]+)\\] "(\\S+) (\\S+) (\\S+)" (\\d{3}) (\\d+|-) ',
  '"((?:[^"\\\\]|\\\\.)*)" "((?:[^"\\\\]|\\\\.)*)" (\\d+\\.\\d{3}) (\\d+\\.\\d{3}|-) "([^"]*)" (\\S+)$'
)
access_fields <- c("client", "time", "method", "target", "protocol", "status", "bytes", "referer",
                   "user_agent", "duration_ms", "queue_ms", "worker", "request_id")

# Access log lines as a data frame, one column per field; every line must match the format.
parse_access <- function(lines) {
  lines <- grep(" [access] ", lines, fixed = TRUE, value = TRUE)
  matches <- regmatches(lines, regexec(access_pattern, lines, perl = TRUE))
  bad <- lengths(matches) == 0
  if (any(bad)) stop("not in the access log format: ", lines[bad][1], call. = FALSE)
  rows <- do.call(rbind, lapply(matches, function(m) m[-1]))
  if (is.null(rows)) rows <- matrix(character(), 0, length(access_fields))
  stats::setNames(as.data.frame(rows, stringsAsFactors = FALSE), access_fields)
}

# Reads the log until `n` access lines came (each is written just after its answer is sent).
wait_access <- function(server, n) {
  lines <- character()
  wait_until(function() {
    lines <<- c(lines, valve_logs(server))
    sum(grepl(" [access] ", lines, fixed = TRUE)) >= n
  }, paste(n, "access log lines"))
  parse_access(lines)
}

# Asks for an uncompressed answer (curl asks plumber for gzip otherwise), so that the bytes
# valve sent are the body's.
fetch <- function(url, headers = character(), post = NULL) {
  headers <- c(headers, `Accept-Encoding` = "identity")
  handle <- curl::new_handle(timeout = 60)
  if (length(headers) > 0) curl::handle_setheaders(handle, .list = as.list(headers))
  if (!is.null(post)) curl::handle_setopt(handle, post = TRUE, postfieldsize = length(post), postfields = post)
  response <- curl::curl_fetch_memory(url, handle = handle)
  list(status = response$status_code, body = rawToChar(response$content),
       headers = curl::parse_headers_list(response$headers))
}

# Sample values from a Prometheus text scrape, by the series as written ('name{label="v"}').
scrape_values <- function(text) {
  lines <- grep("^[a-z]", strsplit(text, "\n", fixed = TRUE)[[1]], value = TRUE)
  stats::setNames(as.numeric(sub("^.* ", "", lines)), sub(" [^ ]*$", "", lines))
}

test_that("each request gets one access log line whose fields are the request's", {
  server <- local_valve(n_min = 1, n_max = 1)
  valve_logs(server)
  get <- fetch(paste0(server$url, "/pid?x=1"), c(`User-Agent` = 'tester "1"', Referer = "http://example.org/a",
                                                   `X-Request-Id` = "trace-42"))
  post <- fetch(paste0(server$url, "/echo"), post = charToRaw(strrep("x", 1000)))
  missing <- fetch(paste0(server$url, "/no/such/path"))
  # Each request is recorded just after its answer is sent: two in a row may log in either order.
  log <- wait_access(server, 3)
  log <- log[match(c("/pid?x=1", "/echo", "/no/such/path"), log$target), ]

  expect_equal(nrow(log), 3)
  expect_equal(log$client, rep("127.0.0.1", 3))
  expect_equal(log$method, c("GET", "POST", "GET"))
  expect_equal(log$protocol, rep("HTTP/1.1", 3))
  expect_equal(as.integer(log$status), c(get$status, post$status, missing$status))
  expect_equal(as.integer(log$status), c(200L, 200L, 404L))
  expect_equal(as.integer(log$bytes), nchar(c(get$body, post$body, missing$body), type = "bytes"))
  expect_equal(log$referer, c("http://example.org/a", "-", "-"))
  expect_equal(log$user_agent[1], 'tester \\"1\\"')
  expect_match(log$user_agent[2], "^libcurl|^R ")
  # [02/Dec/2026:07:36:53 +0000]
  expect_true(all(!is.na(as.POSIXct(log$time, format = "%d/%b/%Y:%H:%M:%S %z"))))
  expect_true(all(as.numeric(log$duration_ms) >= 0))
  expect_true(all(as.numeric(log$queue_ms) >= 0))
  expect_true(all(as.numeric(log$queue_ms) <= as.numeric(log$duration_ms)))
  expect_equal(log$worker, rep(valve_workers(server)$name, 3))
  expect_equal(log$request_id[1], "trace-42")
  expect_equal(log$request_id, c(get$headers$`x-request-id`, post$headers$`x-request-id`,
                                 missing$headers$`x-request-id`))
})

test_that("a sane client request id reaches the worker and comes back; others are replaced", {
  server <- local_valve()
  id_at_worker <- function(response) jsonlite::fromJSON(response$body)$id

  kept <- fetch(paste0(server$url, "/request-id"), c(`X-Request-Id` = "0f8fad5b-d9cb-469f-a165-70867728950e"))
  expect_equal(kept$headers$`x-request-id`, "0f8fad5b-d9cb-469f-a165-70867728950e")
  expect_equal(id_at_worker(kept), "0f8fad5b-d9cb-469f-a165-70867728950e")

  for (bad in c(strrep("a", 129), "has space", "quote\"d", "semi;colon")) {
    replaced <- fetch(paste0(server$url, "/request-id"), c(`X-Request-Id` = bad))
    expect_match(replaced$headers$`x-request-id`, "^[0-9a-f]{32}$")
    expect_equal(id_at_worker(replaced), replaced$headers$`x-request-id`)
  }

  generated <- lapply(1:5, function(i) fetch(paste0(server$url, "/request-id")))
  ids <- vapply(generated, function(r) r$headers$`x-request-id`, "")
  expect_match(ids, "^[0-9a-f]{32}$")
  expect_equal(vapply(generated, id_at_worker, ""), ids)
  expect_equal(anyDuplicated(ids), 0L)
})

test_that("access_log = FALSE writes no access lines", {
  server <- local_valve(access_log = FALSE, admin_port = 0)
  valve_logs(server)
  expect_equal(http_get(paste0(server$url, "/pid"))$status, 200L)
  # Counted by the metrics once recorded, and by then a log line would be there too.
  wait_until(function() {
    isTRUE(scrape_values(http_get(paste0(server$admin_url, "/metrics"))$body)['valve_requests_total{code="200"}'] == 1)
  }, "the request is counted")
  expect_false(any(grepl("[access]", valve_logs(server), fixed = TRUE)))
  expect_error(valve_start(test_api(), access_log = "no"), "access_log", class = "valve_error_argument")
  expect_error(valve_start(test_api(), admin_port = 3000, port = 3000), "must differ from",
               class = "valve_error_argument")
  expect_error(valve_start(test_api(), admin_port = -1), "admin_port", class = "valve_error_argument")
})

test_that("a real scrape passes promtool and counts exactly the requests sent", {
  promtool <- local_tool("promtool")
  server <- local_valve(n_min = 2, n_max = 2, admin_port = 0)
  expect_match(server$admin_url, "^http://127\\.0\\.0\\.1:[0-9]+$")
  expect_false(identical(server$admin_url, server$url))

  ok <- http_parallel(rep(paste0(server$url, "/sleep?ms=50"), 6))
  missing <- http_parallel(rep(paste0(server$url, "/no/such/path"), 3))
  expect_equal(vapply(c(ok, missing), `[[`, 1L, "status"), c(rep(200L, 6), rep(404L, 3)))
  metrics_url <- paste0(server$admin_url, "/metrics")
  values <- NULL
  wait_until(function() {
    values <<- scrape_values(http_get(metrics_url)$body)
    isTRUE(values["valve_request_duration_seconds_count"] == 9)
  }, "nine requests are recorded")
  expect_equal(unname(values['valve_requests_total{code="200"}']), 6)
  expect_equal(unname(values['valve_requests_total{code="404"}']), 3)
  expect_equal(unname(values["valve_queue_wait_seconds_count"]), 9)
  expect_equal(unname(values['valve_request_duration_seconds_bucket{le="+Inf"}']), 9)
  expect_equal(unname(values["valve_queue_length"]), 0)
  expect_equal(unname(values['valve_workers{state="idle"}'] + values['valve_workers{state="busy"}']), 2)
  expect_equal(unname(values['valve_workers{state="starting"}']), 0)
  expect_equal(unname(values["valve_worker_starts_total"]), 2)
  expect_equal(unname(values['valve_worker_exits_total{reason="crash"}']), 0)
  # Scrapes never reached a worker: the workers answered exactly the nine requests.
  expect_equal(sum(valve_workers(server)$requests), 9)

  scrape <- withr::local_tempfile(fileext = ".prom")
  writeBin(charToRaw(http_get(metrics_url)$body), scrape)
  check <- processx::run(promtool, c("check", "metrics"), stdin = scrape, error_on_status = FALSE, timeout = 60)
  expect_equal(check$status, 0L, info = paste(check$stdout, check$stderr))
  expect_equal(trimws(paste(check$stdout, check$stderr)), "")

  # On the main port the same path is the API's own (plumber's 404), and costs a worker.
  expect_equal(http_get(paste0(server$url, "/metrics"))$status, 404L)
  expect_equal(sum(valve_workers(server)$requests), 10)
})

test_that("valve_status() and print() tell what the admin listener shows", {
  server <- local_valve(n_min = 2, n_max = 2, admin_port = 0)
  expect_equal(http_get(paste0(server$url, "/pid"))$status, 200L)
  wait_until(function() length(valve_status(server)$recent) > 0, "the request is recorded")
  status <- valve_status(server)
  expect_s3_class(status, "valve_status")
  expect_equal(status$state, "running")
  expect_true(status$ready)
  expect_equal(status$admin_url, server$admin_url)
  expect_setequal(status$pool$upstreams$pid, valve_workers(server)$pid)
  expect_true(all(status$pool$upstreams$rss_bytes > 0))
  expect_equal(status$requests[["200"]], 1)
  expect_equal(status$recent$target, "/pid")
  json <- jsonlite::fromJSON(http_get(paste0(server$admin_url, "/status.json"))$body)
  expect_equal(sort(json$pool$upstreams$pid), sort(status$pool$upstreams$pid))
  expect_equal(json$requests, status$requests)

  printed <- capture.output(print(status))
  expect_match(printed[1], "^<valve_status> http://127.0.0.1:[0-9]+ \\(running; ready")
  expect_true(any(grepl("requests by status: 200: 1", printed, fixed = TRUE)))
  for (pid in status$pool$upstreams$pid) expect_true(any(grepl(pid, printed, fixed = TRUE)))
  expect_match(capture.output(print(server))[3], paste0("admin: ", server$admin_url), fixed = TRUE)

  no_admin <- local_valve()
  expect_null(no_admin$admin_url)
  expect_length(capture.output(print(no_admin)), 2)
})

test_that("the status page in headless Chromium shows every worker's pid", {
  chromium <- local_tool("chromium")
  server <- local_valve(n_min = 2, n_max = 2, admin_port = 0)
  invisible(http_parallel(rep(paste0(server$url, "/pid"), 4)))
  invisible(http_get(paste0(server$url, "/no/such/path")))
  pids <- valve_workers(server)$pid
  expect_length(pids, 2)
  page <- paste0(server$admin_url, "/status")
  browse <- function(...) {
    profile <- withr::local_tempdir("valve-chromium-")
    processx::run(chromium, c("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              paste0("--user-data-dir=", profile), ..., page),
                  error_on_status = FALSE, timeout = 120, cleanup_tree = TRUE)
  }

  dom <- browse("--dump-dom")
  expect_equal(dom$status, 0L, info = dom$stderr)
  cells <- regmatches(dom$stdout, gregexpr('<td class="n pid">[0-9]+</td>', dom$stdout))[[1]]
  expect_setequal(gsub("[^0-9]", "", cells), as.character(pids))
  expect_match(dom$stdout, 'http-equiv="refresh"', fixed = TRUE)
  expect_false(grepl("<script|src=|href=", dom$stdout))

  artifacts <- Sys.getenv("VALVE_TEST_ARTIFACTS", tempdir())
  dir.create(artifacts, recursive = TRUE, showWarnings = FALSE)
  png <- file.path(artifacts, "status-page.png")
  unlink(png)
  shot <- browse(paste0("--screenshot=", png), "--window-size=1100,900", "--hide-scrollbars")
  expect_equal(shot$status, 0L, info = shot$stderr)
  expect_true(file.exists(png))
  expect_equal(readBin(png, "raw", 8), as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)))
})

test_that("probes: healthy and not ready while starting, ready while serving, not ready while stopping", {
  gate <- withr::local_tempfile(pattern = "valve-gate-")
  held <- withr::local_tempfile(pattern = "valve-held-")
  skip_if_no_engine()
  cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
  port <- httpuv::randomPort()
  p <- processx::process$new(cli, c("-f", normalizePath(test_api("gated.R")), "-n", "1", "--port", port,
                                    "--admin-port", "0"),
                             env = c("current", VALVE_TEST_GATE = gate), stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill())
  stderr <- character()
  admin <- NULL
  wait_until(function() {
    if (!p$is_alive()) stop("valve exited: ", paste(c(stderr, p$read_all_error_lines()), collapse = "\n"))
    stderr <<- c(stderr, p$read_error_lines())
    admin <<- regmatches(stderr, regexpr("http://127\\.0\\.0\\.1:[0-9]+$", stderr))[1]
    !is.na(admin)
  }, "the CLI says where the admin listener is")
  probe <- function(path) {
    tryCatch(curl::curl_fetch_memory(paste0(admin, path))$status_code, error = function(e) NA_integer_)
  }

  # Starting: the worker waits for the gate, so none is ready.
  wait_until(function() identical(probe("/healthz"), 200L), "/healthz answers")
  expect_equal(probe("/readyz"), 503L)
  expect_match(rawToChar(curl::curl_fetch_memory(paste0(admin, "/readyz"))$content), "starting")

  # Serving.
  file.create(gate)
  wait_until(function() identical(probe("/readyz"), 200L), "/readyz says ready")
  expect_equal(http_get(paste0("http://127.0.0.1:", port, "/wait?path=", tempdir()))$status, 200L)

  # Stopping: a request in flight holds the grace period open.
  pool <- curl::new_pool()
  in_flight <- NULL
  curl::curl_fetch_multi(paste0("http://127.0.0.1:", port, "/wait?path=", utils::URLencode(held, reserved = TRUE)),
                         pool = pool, done = function(r) in_flight <<- r$status_code,
                         fail = function(m) in_flight <<- NA_integer_)
  wait_until(function() {
    curl::multi_run(pool = pool, timeout = 0.05)
    json <- jsonlite::fromJSON(rawToChar(curl::curl_fetch_memory(paste0(admin, "/status.json"))$content))
    json$pool$busy == 1
  }, "the held request is in flight")
  p$signal(tools::SIGTERM)
  wait_until(function() {
    curl::multi_run(pool = pool, timeout = 0.05)
    identical(probe("/readyz"), 503L)
  }, "/readyz says 503 while stopping")
  expect_equal(probe("/healthz"), 200L)
  file.create(held)
  wait_until(function() {
    curl::multi_run(pool = pool, timeout = 0.05)
    !is.null(in_flight)
  }, "the held request finishes")
  expect_equal(in_flight, 200L)
  p$wait(30000)
  expect_equal(p$get_exit_status(), 0L)
  expect_true(is.na(probe("/healthz")))

  # Its stderr had one access line per request, with valve's fields.
  log <- parse_access(c(stderr, p$read_all_error_lines()))
  expect_equal(log$status, c("200", "200"))
  expect_setequal(log$target, paste0("/wait?path=", c(tempdir(), utils::URLencode(held, reserved = TRUE))))
})

test_that("the CLI's access log goes to stderr unless --no-access-log or VALVE_ACCESS_LOG=false", {
  skip_if_no_engine()
  cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
  for (off in list(list(args = "--no-access-log", env = character()),
                   list(args = character(), env = c(VALVE_ACCESS_LOG = "false")))) {
    port <- httpuv::randomPort()
    p <- processx::process$new(cli, c("-f", normalizePath(test_api()), "--port", port, off$args),
                               env = c("current", off$env), stdout = "|", stderr = "|")
    withr::defer(if (p$is_alive()) p$kill())
    wait_until(function() {
      if (!p$is_alive()) stop("valve exited: ", paste(p$read_all_error_lines(), collapse = "\n"))
      any(grepl("valve is serving", p$read_output_lines(), fixed = TRUE))
    }, "the CLI serves")
    expect_equal(http_get(paste0("http://127.0.0.1:", port, "/pid"))$status, 200L)
    p$signal(tools::SIGTERM)
    p$wait(30000)
    expect_equal(p$get_exit_status(), 0L)
    expect_false(any(grepl("[access]", p$read_all_error_lines(), fixed = TRUE)))
  }
})
