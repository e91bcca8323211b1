# End-to-end tests need rJava running a JVM >= 21. Outside `make check` they skip when it is
# missing; `make check` sets VALVE_E2E=required, where a skip would hide a broken set-up, so
# it fails instead.
skip_if_no_engine <- function() {
  skip_on_cran()
  # The package's own check, so the tests and valve_start() agree on what Java is good enough.
  why <- tryCatch(
    {
      valve:::check_java()
      NULL
    },
    valve_error_java = function(e) paste0("valve's engine needs Java >= 21; rJava runs ", e$java_version),
    error = function(e) paste0("rJava cannot start a JVM: ", conditionMessage(e))
  )
  if (!is.null(why)) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop(why, call. = FALSE)
    skip(why)
  }
}

test_api <- function(name = "plumber.R") {
  test_path("apis", name)
}

# Starts valve on a free port for the calling test and stops it when the test ends.
# `plumber_file = NULL` leaves it out, for `dir =` and `api =`.
local_valve <- function(..., plumber_file = test_api(), .local_envir = parent.frame()) {
  skip_if_no_engine()
  args <- list(port = 0, ...)
  if (!is.null(plumber_file)) args <- c(list(plumber_file = plumber_file), args)
  server <- do.call(valve_start, args)
  withr::defer(valve_stop(server, grace = 0), envir = .local_envir)
  server
}

http_get <- function(url) {
  response <- curl::curl_fetch_memory(url, handle = curl::new_handle(timeout = 60))
  list(status = response$status_code, body = rawToChar(response$content))
}

json <- function(response) jsonlite::fromJSON(response$body)

# Runs requests concurrently and returns their responses in the order of `urls`.
http_parallel <- function(urls) {
  pool <- curl::new_pool(total_con = 100, host_con = 100)
  results <- vector("list", length(urls))
  for (i in seq_along(urls)) {
    local({
      index <- i
      curl::curl_fetch_multi(
        urls[[index]],
        pool = pool,
        handle = curl::new_handle(timeout = 60),
        done = function(r) results[[index]] <<- list(status = r$status_code, body = rawToChar(r$content)),
        fail = function(message) results[[index]] <<- list(status = NA_integer_, body = message)
      )
    })
  }
  curl::multi_run(pool = pool)
  results
}

pid_alive <- function(pid) {
  isTRUE(tools::pskill(pid, 0L))
}

# Polls until `condition()` is true. The deadline only turns a hang into a failure; it is
# never a speed requirement.
wait_until <- function(condition, what, timeout = 30) {
  deadline <- Sys.time() + timeout
  while (!isTRUE(condition())) {
    if (Sys.time() > deadline) stop("timed out waiting until ", what, call. = FALSE)
    Sys.sleep(0.05)
  }
  invisible(TRUE)
}

rscript <- function() file.path(R.home("bin"), "Rscript")

# PIDs of valve worker processes, from /proc (no ps needed): those started by the engine in
# process `parent` (each worker gets it in VALVE_PARENT_PID), so that workers of other test runs
# on the same machine are not counted; every worker on the machine if `parent` is NULL.
# Processes may exit while we read them: they are skipped.
worker_pids <- function(parent = NULL) {
  read_proc <- function(pid, file) {
    bytes <- tryCatch(
      suppressWarnings(readBin(file.path("/proc", pid, file), "raw", 1e5)),
      error = function(e) raw()
    )
    strsplit(rawToChar(replace(bytes, bytes == 0, as.raw(10))), "\n", fixed = TRUE)[[1]]
  }
  pids <- suppressWarnings(as.integer(list.files("/proc", pattern = "^[0-9]+$")))
  mine <- vapply(pids, function(pid) {
    any(grepl("worker/worker.R", read_proc(pid, "cmdline"), fixed = TRUE)) &&
      (is.null(parent) || paste0("VALVE_PARENT_PID=", parent) %in% read_proc(pid, "environ"))
  }, logical(1))
  pids[mine]
}
