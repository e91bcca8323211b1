test_that("workers refuse requests that do not come through valve", {
  server <- local_valve()
  worker <- valve_workers(server)
  direct <- http_get(sprintf("http://127.0.0.1:%d/pid", worker$port))
  expect_equal(direct$status, 403L)
  expect_match(direct$body, "send requests to valve")
  expect_equal(http_get(paste0(server$url, "/pid"))$status, 200L)
})

test_that("the per-run secret never reaches the API code or the logs", {
  server <- local_valve()
  seen <- json(http_get(paste0(server$url, "/introspect")))
  expect_false(any(grepl("VALVE_SECRET", seen$request, ignore.case = TRUE)))
  expect_false(any(grepl("valve-secret", seen$headers, ignore.case = TRUE)))
  expect_false(any(grepl("SECRET", seen$env)))
  expect_true("HTTP_X_FORWARDED_FOR" %in% seen$request)
  expect_false(any(grepl("secret", valve_logs(server), ignore.case = TRUE)))
})

test_that("X-Forwarded-For from a client is kept but the real peer is appended", {
  server <- local_valve()
  handle <- curl::new_handle()
  curl::handle_setheaders(handle, "X-Forwarded-For" = "203.0.113.9", "X-Forwarded-Proto" = "https")
  response <- curl::curl_fetch_memory(paste0(server$url, "/forwarded"), handle = handle)
  seen <- jsonlite::fromJSON(rawToChar(response$content))
  expect_equal(seen$xff, "203.0.113.9, 127.0.0.1")
  expect_equal(seen$proto, "http")
  expect_equal(seen$host, sub("^http://", "", server$url))
})

test_that("valve listens on 127.0.0.1 by default and workers listen on 127.0.0.1 only", {
  server <- local_valve()
  expect_match(server$url, "^http://127\\.0\\.0\\.1:")
  # Addresses a port is listening on, from /proc/net/tcp and tcp6 (hex, as the kernel writes them).
  listening <- function(port) {
    lines <- c(readLines("/proc/net/tcp")[-1], readLines("/proc/net/tcp6")[-1])
    fields <- strsplit(trimws(lines), "[[:space:]]+")
    local <- vapply(fields, `[[`, "", 2)
    local <- local[vapply(fields, `[[`, "", 4) == "0A"]
    unique(sub(":.*", "", local[strtoi(sub(".*:", "", local), 16L) == port]))
  }
  loopback <- c("0100007F", "0000000000000000FFFF00000100007F")
  expect_true(all(listening(valve_workers(server)$port) %in% loopback))
  expect_length(listening(valve_workers(server)$port), 1)
  expect_true(all(listening(as.integer(sub(".*:", "", server$url))) %in% loopback))
  expect_length(listening(as.integer(sub(".*:", "", server$url))), 1)
})
