# WebSockets in tests: R has no WebSocket client here, so a Python one (Debian's
# python3-websockets) runs as a child process, one JSON command per line (see ws/driver.py).
# Headless Chromium is driven through it too, over the DevTools protocol.

# A Python 3 that has the websockets package: Debian's, even when another python3 comes first
# on the PATH. Outside `make check` its absence skips.
local_python <- function() {
  candidates <- unique(c("/usr/bin/python3", unname(Sys.which("python3"))))
  for (python in candidates[nzchar(candidates) & file.exists(candidates)]) {
    found <- processx::run(python, c("-c", "import websockets"), error_on_status = FALSE, timeout = 60)
    if (found$status == 0L) return(python)
  }
  why <- "no python3 with the websockets package (make check installs python3-websockets)"
  if (identical(Sys.getenv("VALVE_E2E"), "required")) stop(why, call. = FALSE)
  skip(why)
}

# Starts the driver for the calling test; it is stopped by PID when the test ends.
local_ws_driver <- function(.local_envir = parent.frame()) {
  python <- local_python()
  driver <- processx::process$new(python, c("-u", test_path("ws", "driver.py")),
                                  stdin = "|", stdout = "|", stderr = "|")
  withr::defer(if (driver$is_alive()) driver$kill(), envir = .local_envir)
  driver
}

# Runs one driver command and returns its answer. Each command is bounded in the driver by its
# `timeout`; the wait here only turns a stuck driver into a failure.
ws_do <- function(driver, op, ..., timeout = 30) {
  command <- list(op = op, ..., timeout = timeout)
  deadline <- Sys.time() + timeout + 30
  # processx writes what the pipe takes and returns the rest.
  unwritten <- charToRaw(paste0(jsonlite::toJSON(command, auto_unbox = TRUE, null = "null"), "\n"))
  while (length(unwritten) > 0) {
    unwritten <- driver$write_input(unwritten)
    if (length(unwritten) > 0) {
      if (!driver$is_alive() || Sys.time() > deadline) stop("the WebSocket driver does not read ", op, call. = FALSE)
      Sys.sleep(0.01)
    }
  }
  repeat {
    driver$poll_io(1000)
    line <- driver$read_output_lines(n = 1)
    if (length(line) == 1L) return(jsonlite::fromJSON(line, simplifyVector = FALSE))
    if (!driver$is_alive()) stop("the WebSocket driver exited: ", driver$read_all_error(), call. = FALSE)
    if (Sys.time() > deadline) stop("the WebSocket driver did not answer ", op, call. = FALSE)
  }
}

ws_url <- function(server, path = "/") {
  sub("^http://", "ws://", paste0(server$url, path))
}

# Headless Chromium with its DevTools protocol on a free port, connected to `driver` as
# "browser"; it is closed (and its process tree stopped) when the calling test ends.
local_chromium <- function(driver, .local_envir = parent.frame()) {
  chromium <- Sys.which("chromium")
  if (!nzchar(chromium)) {
    why <- "chromium is not installed (make check installs it)"
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop(why, call. = FALSE)
    skip(why)
  }
  profile <- withr::local_tempdir("valve-chromium-", .local_envir = .local_envir)
  log <- file.path(profile, "stderr.log")
  # Pages in other windows must not be throttled: Shiny reconnects on a timer.
  browser <- processx::process$new(chromium, c(
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
    "--remote-debugging-port=0", paste0("--user-data-dir=", profile), "about:blank"
  ), stdout = NULL, stderr = log, cleanup_tree = TRUE)
  withr::defer({
    if (browser$is_alive()) {
      try(ws_do(driver, "cdp", name = "browser", method = "Browser.close", timeout = 10), silent = TRUE)
      browser$wait(10000)
    }
    browser$kill_tree()
  }, envir = .local_envir)
  url <- NA_character_
  wait_until(function() {
    if (!browser$is_alive()) stop("chromium exited: ", paste(readLines(log), collapse = "\n"), call. = FALSE)
    lines <- if (file.exists(log)) readLines(log, warn = FALSE) else character()
    url <<- regmatches(lines, regexpr("ws://127\\.0\\.0\\.1:[0-9]+/devtools/browser/[^[:space:]]+", lines))[1]
    !is.na(url)
  }, "chromium says where its DevTools listen", timeout = 60)
  connected <- ws_do(driver, "connect", name = "browser", url = url, cdp = TRUE)
  if (!isTRUE(connected$ok)) stop("cannot connect to chromium's DevTools: ", connected$error, call. = FALSE)
  invisible(browser)
}

# One DevTools call; `session` addresses a page (see browser_page()).
cdp <- function(driver, method, params = NULL, session = NULL) {
  command <- list(driver, "cdp", name = "browser", method = method)
  command$params <- params
  command$session <- session
  answer <- do.call(ws_do, command)
  if (!isTRUE(answer$ok)) {
    stop("DevTools ", method, " failed: ", jsonlite::toJSON(answer, auto_unbox = TRUE), call. = FALSE)
  }
  answer$result
}

# A page opened on `url` in a new browser context: a separate profile with its own cookies,
# as another person's browser would be.
browser_page <- function(driver, url) {
  context <- cdp(driver, "Target.createBrowserContext")$browserContextId
  target <- cdp(driver, "Target.createTarget", list(url = url, browserContextId = context))$targetId
  session <- cdp(driver, "Target.attachToTarget", list(targetId = target, flatten = TRUE))$sessionId
  list(driver = driver, context = context, target = target, session = session)
}

# The value of a JavaScript expression in the page.
page_eval <- function(page, expression) {
  result <- cdp(page$driver, "Runtime.evaluate", list(expression = expression, returnByValue = TRUE),
                session = page$session)
  if (!is.null(result$exceptionDetails)) stop("JavaScript failed: ", expression, call. = FALSE)
  result$result$value
}
