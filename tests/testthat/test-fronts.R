# The fronts R users put before an API, talking the way they really talk: nginx with its default
# upstream protocol (HTTP/1.0) and ApacheBench (HTTP/1.0). Both got 505 from Helidon 4.5 alone.

local_nginx <- function(upstream_url, .local_envir = parent.frame()) {
  nginx <- Sys.which("nginx")
  if (!nzchar(nginx)) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop("nginx is not installed", call. = FALSE)
    skip("nginx is not installed")
  }
  prefix <- withr::local_tempdir(.local_envir = .local_envir)
  port <- httpuv::randomPort()
  conf <- file.path(prefix, "nginx.conf")
  # One process, in the foreground, everything under the test's own directory; no
  # proxy_http_version: nginx then speaks HTTP/1.0 to valve, as most tutorials leave it.
  writeLines(c(
    "daemon off;", "master_process off;", "worker_processes 1;", "pid nginx.pid;",
    "error_log error.log warn;",
    "events { worker_connections 64; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path body; proxy_temp_path proxy;",
    "  fastcgi_temp_path fastcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;",
    "  client_max_body_size 10m;",
    sprintf("  server { listen 127.0.0.1:%d; location / { proxy_pass %s; } }", port, upstream_url),
    "}"
  ), conf)
  process <- processx::process$new(nginx, c("-p", prefix, "-c", conf), stdout = "|", stderr = "|")
  withr::defer(process$kill(), envir = .local_envir)
  url <- paste0("http://127.0.0.1:", port)
  wait_until(function() {
    if (!process$is_alive()) stop("nginx exited: ", process$read_all_error(), call. = FALSE)
    tryCatch({
      curl::curl_fetch_memory(url, handle = curl::new_handle(timeout = 2))
      TRUE
    }, error = function(e) FALSE)
  }, "nginx listens")
  url
}

test_that("nginx with its default HTTP/1.0 upstream protocol reaches the API through valve", {
  server <- local_valve(plumber_file = test_api("http/plumber.R"), n_max = 2)
  url <- local_nginx(server$url)

  got <- http_get(paste0(url, "/pid"))
  expect_equal(got$status, 200L)
  expect_true(json(got)$pid %in% valve_workers(server)$pid)

  body <- as.raw(rep(1:200, 5000))
  handle <- curl::new_handle(timeout = 60, post = TRUE, postfieldsize = length(body), postfields = body)
  curl::handle_setheaders(handle, "Content-Type" = "application/octet-stream")
  posted <- curl::curl_fetch_memory(paste0(url, "/echo"), handle = handle)
  expect_equal(posted$status_code, 200L)
  expect_equal(jsonlite::fromJSON(rawToChar(posted$content))$bytes, length(body))

  streamed <- curl::curl_fetch_memory(paste0(url, "/bytes?n=3000000"), handle = curl::new_handle(timeout = 60))
  expect_equal(streamed$status_code, 200L)
  expect_equal(length(streamed$content), 3e6)
  expect_equal(streamed$content[1:3], as.raw(1:3))
  expect_equal(streamed$content[3e6], as.raw(3e6 %% 251))
})

test_that("ab (HTTP/1.0) gets 200 answers from valve, with and without keep-alive", {
  ab <- Sys.which("ab")
  if (!nzchar(ab)) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop("ab is not installed", call. = FALSE)
    skip("ab (apache2-utils) is not installed")
  }
  server <- local_valve(plumber_file = test_api("http/plumber.R"), n_max = 2)
  for (keep_alive in c(FALSE, TRUE)) {
    args <- c(if (keep_alive) "-k", "-n", "200", "-c", "5", "-s", "30", paste0(server$url, "/pid"))
    output <- processx::run(ab, args, timeout = 120)$stdout
    field <- function(name) as.numeric(sub(paste0(".*", name, ":\\s+([0-9]+).*"), "\\1", grep(name, strsplit(output, "\n")[[1]], value = TRUE)[1]))
    expect_equal(field("Complete requests"), 200, info = output)
    expect_equal(field("Failed requests"), 0, info = output)
    expect_false(grepl("Non-2xx responses", output), info = output)
    if (keep_alive) expect_equal(field("Keep-Alive requests"), 200, info = output)
  }
})
