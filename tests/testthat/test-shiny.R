# Shiny apps through valve, in a real browser: headless Chromium driven over its DevTools
# protocol (ws/driver.py). The test app (apis/shiny) shows its input doubled and the pid of the
# worker that rendered it.

local_shiny <- function(..., app = "shiny", .local_envir = parent.frame()) {
  local_valve(dir = test_api(app), plumber_file = NULL, ..., .local_envir = .local_envir)
}

# Waits until the page's output reads "double=<2 * n> pid=<pid>" and returns that pid.
# Before the first render, and while a page reloads, the output is empty or absent.
wait_output <- function(page, n, what = paste("the output shows", 2 * n)) {
  pattern <- paste0("^double=", 2 * n, " pid=([0-9]+)$")
  text <- ""
  tryCatch(
    wait_until(function() {
      text <<- page_eval(page, "(function() { var o = document.getElementById('result'); return o ? o.innerText : ''; })()")
      grepl(pattern, text)
    }, what, timeout = 60),
    error = function(e) {
      stop(conditionMessage(e), "; the page shows: ", page_eval(page, "document.body.innerText"), call. = FALSE)
    }
  )
  as.integer(sub(pattern, "\\1", text))
}

# Types a new value into the numeric input, as a person would (the input's change event).
# Opens `n` browser sessions one after the other, so that each new one sees those before it;
# returns the pages and the worker pid each one shows.
open_sessions <- function(driver, url, n) {
  pages <- list()
  pids <- integer()
  for (i in seq_len(n)) {
    pages[[i]] <- browser_page(driver, url)
    pids[i] <- wait_output(pages[[i]], 5)
  }
  list(pages = pages, pids = pids)
}

set_n <- function(page, n) {
  page_eval(page, sprintf("$('#n').val(%d).trigger('change'); true", n))
}

reload <- function(page) {
  cdp(page$driver, "Page.reload", session = page$session)
}

test_that("a Shiny app renders through valve and its output follows its input", {
  server <- local_shiny(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  local_chromium(driver)
  page <- browser_page(driver, server$url)

  pid <- wait_output(page, 5)
  expect_equal(pid, valve_workers(server)$pid)
  for (n in c(21, 8, 13)) {
    set_n(page, n)
    expect_equal(wait_output(page, n), pid)
  }

  # valve's session cookie, out of reach of the page's scripts.
  cookies <- cdp(driver, "Storage.getCookies", list(browserContextId = page$context))$cookies
  session <- Filter(function(cookie) identical(cookie$name, "valve_session"), cookies)
  expect_length(session, 1)
  expect_true(session[[1]]$httpOnly)
  expect_equal(session[[1]]$path, "/")
  expect_equal(session[[1]]$sameSite, "Lax")
  expect_false(grepl("valve_session", page_eval(page, "document.cookie"), fixed = TRUE))
})

test_that("browser sessions spread over workers and each stays on its own", {
  server <- local_shiny(n_min = 1, n_max = 3, max_sessions = 1)
  driver <- local_ws_driver()
  local_chromium(driver)

  opened <- open_sessions(driver, server$url, 3)
  pages <- opened$pages
  pids <- opened$pids
  expect_equal(anyDuplicated(pids), 0L)
  expect_setequal(valve_workers(server)$pid, pids)
  # Each worker counts its one session (its open WebSocket).
  wait_until(function() all(valve_workers(server)$sessions == 1), "each worker counts its session")

  for (n in c(7, 11, 2)) {
    for (i in seq_along(pages)) set_n(pages[[i]], n + i)
    for (i in seq_along(pages)) expect_equal(wait_output(pages[[i]], n + i), pids[i])
  }
  # A reload is new HTTP requests and a new WebSocket: the cookie brings them back to the same worker.
  for (i in seq_along(pages)) {
    reload(pages[[i]])
    expect_equal(wait_output(pages[[i]], 5, "the reloaded page renders"), pids[i])
  }
})

test_that("a session whose worker died is served again, after a reconnect and after a reload", {
  server <- local_shiny(n_min = 1, n_max = 3, max_sessions = 1)
  driver <- local_ws_driver()
  local_chromium(driver)
  opened <- open_sessions(driver, server$url, 2)
  first <- opened$pages[[1]]
  second <- opened$pages[[2]]
  pid <- opened$pids[1]
  other <- opened$pids[2]
  expect_false(pid == other)
  set_n(first, 8)
  expect_equal(wait_output(first, 8), pid)

  tools::pskill(pid, tools::SIGKILL)
  # Shiny's JavaScript reconnects by itself (valve made every session allow it), through valve,
  # to a live worker, and sends its inputs again: the output shows 8 doubled, from another pid.
  pattern <- "^double=16 pid=([0-9]+)$"
  text <- ""
  wait_until(function() {
    text <<- page_eval(first, "document.getElementById('result').innerText")
    grepl(pattern, text) && as.integer(sub(pattern, "\\1", text)) != pid
  }, "the page reconnects to a live worker", timeout = 60)
  moved <- as.integer(sub(pattern, "\\1", text))
  expect_true(pid_alive(moved))
  expect_false(moved == other)

  # A reload stays where the session went; the other session never moved.
  reload(first)
  expect_equal(wait_output(first, 5, "the reloaded page renders"), moved)
  set_n(second, 3)
  expect_equal(wait_output(second, 3), other)

  # Killed again, the session is served after a reload (the page's WebSocket and its HTTP
  # requests are re-placed, never left hanging).
  tools::pskill(moved, tools::SIGKILL)
  reload(first)
  again <- wait_output(first, 5, "the page reloaded after its worker died renders")
  expect_false(again %in% c(pid, moved))
  expect_true(pid_alive(again))
  set_n(first, 4)
  expect_equal(wait_output(first, 4), again)
})

test_that("a directory with app.R, or with ui.R and server.R, is served as a Shiny app", {
  driver <- local_ws_driver()
  local_chromium(driver)
  for (case in list(list(app = "shiny"), list(app = "shiny-split"), list(app = "shiny-split", type = "shiny"))) {
    server <- do.call(local_shiny, c(case, n_min = 1, n_max = 1))
    home <- curl::curl_fetch_memory(server$url, handle = curl::new_handle(timeout = 60))
    expect_equal(home$status_code, 200L)
    expect_match(rawToChar(home$content), "shiny.min.js", fixed = TRUE)
    expect_match(curl::parse_headers(home$headers), "^set-cookie: valve_session=", ignore.case = TRUE, all = FALSE)

    page <- browser_page(driver, server$url)
    expect_equal(wait_output(page, 5), valve_workers(server)$pid)
    set_n(page, 6)
    expect_equal(wait_output(page, 6), valve_workers(server)$pid)
    valve_stop(server, grace = 0)
  }
})

test_that("a Shiny worker refuses HTTP and WebSockets that do not come through valve", {
  server <- local_shiny(n_min = 1, n_max = 1)
  driver <- local_ws_driver()
  worker <- valve_workers(server)
  direct <- sprintf("127.0.0.1:%d", worker$port)
  expect_equal(http_get(paste0("http://", direct, "/"))$status, 403L)
  # Shiny's own files are served by httpuv, which checks the secret as well.
  expect_equal(http_get(paste0("http://", direct, "/shared/shiny.min.js"))$status, 403L)
  expect_equal(http_get(paste0(server$url, "/shared/shiny.min.js"))$status, 200L)

  # Shiny accepts the handshake but closes the socket before any message.
  connected <- ws_do(driver, "connect", name = "direct", url = paste0("ws://", direct, "/websocket/"))
  if (isTRUE(connected$ok)) {
    answer <- ws_do(driver, "recv", name = "direct")
    expect_true(answer$closed)
  } else {
    expect_equal(connected$status, 403L)
  }
})

test_that("a worker with a live session is kept; one whose sessions all left stops after max_age", {
  server <- local_shiny(n_min = 1, n_max = 2, max_sessions = 1, check_unused = 1, max_age = 2)
  driver <- local_ws_driver()
  local_chromium(driver)
  opened <- open_sessions(driver, server$url, 2)
  first <- opened$pages[[1]]
  second <- opened$pages[[2]]
  kept <- opened$pids[1]
  leaving <- opened$pids[2]
  expect_false(kept == leaving)

  # Longer than max_age plus a check: sessions that send nothing still hold their workers.
  Sys.sleep(4)
  expect_setequal(valve_workers(server)$pid, c(kept, leaving))
  set_n(first, 6)
  expect_equal(wait_output(first, 6), kept)

  # The second browser goes away: its worker has no session left and stops, down to n_min.
  cdp(driver, "Target.disposeBrowserContext", list(browserContextId = second$context))
  wait_until(function() identical(valve_workers(server)$pid, kept), "the worker without sessions stops")
  wait_until(function() !pid_alive(leaving), "its process exits")
  set_n(first, 7)
  expect_equal(wait_output(first, 7), kept)
})

test_that("preforked Shiny workers serve sessions, a new one on the worker with the fewest", {
  server <- local_shiny(n_min = 2, n_max = 2, preload = TRUE)
  driver <- local_ws_driver()
  local_chromium(driver)
  opened <- open_sessions(driver, server$url, 2)
  pages <- opened$pages
  pids <- opened$pids
  # Room for 20 sessions on each, yet the second goes to the worker that has none.
  expect_setequal(pids, valve_workers(server)$pid)
  for (i in 1:2) {
    set_n(pages[[i]], 10 + i)
    expect_equal(wait_output(pages[[i]], 10 + i), pids[i])
  }
})

test_that("the command line serves a Shiny app: valve local --dir app", {
  skip_if_no_engine()
  cli <- system.file("bin", "valve", package = "valve", mustWork = TRUE)
  port <- httpuv::randomPort()
  p <- processx::process$new(cli, c("local", "--dir", normalizePath(test_api("shiny")), "--port", port,
                                    "--max-sessions", "1", "--no-access-log"),
                             stdout = "|", stderr = "|")
  withr::defer(if (p$is_alive()) p$kill())
  wait_until(function() {
    if (!p$is_alive()) stop("valve exited: ", paste(p$read_all_error_lines(), collapse = "\n"))
    any(grepl("valve is serving", p$read_output_lines(), fixed = TRUE))
  }, "the CLI serves", timeout = 60)
  url <- paste0("http://127.0.0.1:", port)
  home <- curl::curl_fetch_memory(url, handle = curl::new_handle(timeout = 60))
  expect_equal(home$status_code, 200L)
  expect_match(rawToChar(home$content), "shiny.min.js", fixed = TRUE)
  cookie <- sub(";.*", "", curl::parse_headers_list(home$headers)[["set-cookie"]])
  expect_match(cookie, "^valve_session=")

  # Shiny's own protocol on the session's WebSocket, as its JavaScript speaks it.
  driver <- local_ws_driver()
  connected <- ws_do(driver, "connect", name = "shiny", url = paste0("ws://127.0.0.1:", port, "/websocket/"),
                     headers = list(Cookie = cookie))
  expect_true(connected$ok)
  init <- list(method = "init", data = list(n = 4, .clientdata_output_result_hidden = FALSE))
  ws_do(driver, "send", name = "shiny", text = as.character(jsonlite::toJSON(init, auto_unbox = TRUE)))
  values <- NULL
  for (i in 1:20) {
    message <- ws_do(driver, "recv", name = "shiny")
    expect_true(message$ok)
    values <- jsonlite::fromJSON(message$text)$values
    if (!is.null(values$result)) break
  }
  expect_match(values$result, "^double=8 pid=[0-9]+$")

  p$signal(tools::SIGTERM)
  p$wait(30000)
  expect_equal(p$get_exit_status(), 0L)
})
