# WebSockets through valve, frame by frame, against a worker whose entrypoint.R runs an httpuv
# echo server (apis/websocket). The client is Python's websockets (ws/driver.py).

local_echo <- function(..., .local_envir = parent.frame()) {
  local_valve(dir = test_api("websocket"), plumber_file = NULL, ..., .local_envir = .local_envir)
}

# The pid of the worker at the other end of connection `name`.
ws_pid <- function(driver, name) {
  expect_true(ws_do(driver, "send", name = name, text = "pid")$ok)
  answer <- ws_do(driver, "recv", name = name)
  expect_match(answer$text, "^pid [0-9]+$")
  as.integer(sub("pid ", "", answer$text, fixed = TRUE))
}

ws_open <- function(driver, name, url) {
  connected <- ws_do(driver, "connect", name = name, url = url)
  expect_true(connected$ok, info = paste("connect", name, jsonlite::toJSON(connected, auto_unbox = TRUE)))
  invisible(connected)
}

test_that("text, binary, large and fragmented messages echo through valve", {
  server <- local_echo(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  ws_open(driver, "a", ws_url(server))
  expect_equal(ws_pid(driver, "a"), valve_workers(server)$pid)

  sent <- ws_do(driver, "send", name = "a", text = "hello, valve \u00e9")
  echo <- ws_do(driver, "recv", name = "a")
  expect_equal(echo$type, "text")
  expect_equal(echo$text, "hello, valve \u00e9")

  bytes <- as.raw(0:255)
  sent <- ws_do(driver, "send", name = "a", base64 = jsonlite::base64_enc(bytes))
  echo <- ws_do(driver, "recv", name = "a")
  expect_equal(echo$type, "binary")
  expect_equal(echo$length, 256L)
  expect_equal(echo$sha256, sent$sha256)

  # Larger than one read of any buffer on the way, in one frame each.
  for (size in c(1, 4) * 2^20) {
    sent <- ws_do(driver, "send", name = "a", random = size)
    echo <- ws_do(driver, "recv", name = "a", timeout = 60)
    expect_equal(echo$type, "binary")
    expect_equal(echo$length, size)
    expect_equal(echo$sha256, sent$sha256)
  }
  sent <- ws_do(driver, "send", name = "a", text = "valve ", times = 2^18)
  echo <- ws_do(driver, "recv", name = "a", timeout = 60)
  expect_equal(echo$type, "text")
  expect_equal(echo$length, 6 * 2^18)
  expect_equal(echo$sha256, sent$sha256)

  # One message in three frames (a text frame and two continuations).
  sent <- ws_do(driver, "send", name = "a", fragments = list("frag", "ment", "ed"))
  echo <- ws_do(driver, "recv", name = "a")
  expect_equal(echo$text, "fragmented")

  # Still the same connection, on the same worker.
  expect_equal(ws_pid(driver, "a"), valve_workers(server)$pid)
})

test_that("a close started by either side reaches the other with its code", {
  server <- local_echo(n_min = 1, n_max = 1)
  driver <- local_ws_driver()

  ws_open(driver, "client-closes", ws_url(server))
  ws_pid(driver, "client-closes")
  closed <- ws_do(driver, "close", name = "client-closes", code = 1000)
  expect_true(closed$closed)
  expect_equal(closed$code, 1000L)

  ws_open(driver, "worker-closes", ws_url(server))
  expect_true(ws_do(driver, "send", name = "worker-closes", text = "close 4001")$ok)
  closed <- ws_do(driver, "recv", name = "worker-closes")
  expect_true(closed$closed)
  expect_equal(closed$code, 4001L)
  expect_equal(closed$reason, "asked to close")

  # valve serves on: WebSockets and plain HTTP, from the same worker.
  ws_open(driver, "after", ws_url(server))
  expect_equal(ws_pid(driver, "after"), valve_workers(server)$pid)
  expect_equal(json(http_get(paste0(server$url, "/pid")))$pid, valve_workers(server)$pid)
})

test_that("a worker killed mid-connection ends the client's connection and valve serves on", {
  server <- local_echo(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  ws_open(driver, "a", ws_url(server))
  pid <- ws_pid(driver, "a")

  tools::pskill(pid, tools::SIGKILL)
  closed <- ws_do(driver, "closed", name = "a")
  expect_true(closed$ok, info = "the connection ends once its worker is gone")
  expect_true(closed$closed)
  # Not a clean close: the client can tell that the other end went away.
  expect_false(identical(closed$code, 1000L))

  # valve replaces the worker (n_min = 1); new WebSockets and plain requests are served.
  wait_until(function() {
    workers <- valve_workers(server)
    nrow(workers) == 1 && !pid %in% workers$pid
  }, "the killed worker is replaced")
  ws_open(driver, "b", ws_url(server))
  replacement <- ws_pid(driver, "b")
  expect_false(replacement == pid)
  expect_true(pid_alive(replacement))
  expect_equal(json(http_get(paste0(server$url, "/pid")))$pid, replacement)
  expect_equal(ws_do(driver, "send", name = "b", text = "still here")$ok, TRUE)
  expect_equal(ws_do(driver, "recv", name = "b")$text, "still here")
})

test_that("the secret guards WebSocket handshakes to a worker's own port", {
  server <- local_echo(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  worker <- valve_workers(server)
  direct <- sprintf("ws://127.0.0.1:%d/", worker$port)

  refused <- ws_do(driver, "connect", name = "direct", url = direct)
  expect_false(refused$ok)
  expect_equal(refused$status, 403L)
  forged <- ws_do(driver, "connect", name = "forged", url = direct, headers = list(`X-Valve-Secret` = "guess"))
  expect_false(forged$ok)
  expect_equal(forged$status, 403L)
  expect_equal(http_get(sprintf("http://127.0.0.1:%d/pid", worker$port))$status, 403L)

  # Through valve the handshake carries the secret, and the app never sees it.
  ws_open(driver, "a", ws_url(server))
  expect_true(ws_do(driver, "send", name = "a", text = "request")$ok)
  seen <- ws_do(driver, "recv", name = "a")$text
  expect_match(seen, "HTTP_UPGRADE", fixed = TRUE)
  expect_false(grepl("secret", seen, ignore.case = TRUE))
})

test_that("open WebSockets hold a place on their worker, not its request slot", {
  server <- local_echo(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  pid <- valve_workers(server)$pid
  names <- paste0("ws", 1:3)
  for (name in names) {
    ws_open(driver, name, ws_url(server))
    expect_equal(ws_pid(driver, name), pid)
  }
  # The only worker has three open WebSockets, and still answers plain requests, several at once.
  wait_until(function() identical(valve_workers(server)$sessions, 3L), "the worker counts three WebSockets")
  answers <- http_parallel(rep(paste0(server$url, "/pid"), 4))
  expect_equal(vapply(answers, `[[`, 1L, "status"), rep(200L, 4))
  expect_equal(vapply(answers, function(a) jsonlite::fromJSON(a$body)$pid, 1L), rep(pid, 4))
  for (name in names) {
    expect_true(ws_do(driver, "send", name = name, text = name)$ok)
    expect_equal(ws_do(driver, "recv", name = name)$text, name)
  }
  for (name in names) ws_do(driver, "close", name = name)
  wait_until(function() identical(valve_workers(server)$sessions, 0L), "closed WebSockets give their places back")
})
