# preload = TRUE: workers forked from a template R process that loaded the API once, as
# isolated as workers started from scratch, and never left behind.

template_pid <- function(log) {
  line <- tail(grep("starting the preload template \\(pid [0-9]+\\)", log, value = TRUE), 1)
  as.integer(sub(".*\\(pid ([0-9]+)\\).*", "\\1", line))
}

parent_pid <- function(pid) {
  stat <- readLines(file.path("/proc", pid, "stat"), warn = FALSE)
  as.integer(strsplit(sub(".*\\) ", "", stat), " ")[[1]][[2]])
}

test_that("preloaded workers are forked from the template, serve, demand the secret and all stop", {
  server <- local_valve(n_min = 2, n_max = 3, preload = TRUE)
  log <- valve_logs(server)
  template <- template_pid(log)
  workers <- valve_workers(server)
  expect_equal(nrow(workers), 2)
  expect_equal(vapply(workers$pid, parent_pid, integer(1)), rep(template, 2))
  expect_match(paste(log, collapse = "\n"), "ready in [0-9]+ ms, forked from the template")

  results <- http_parallel(rep(paste0(server$url, "/sleep?ms=300"), 6))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 6))
  served_by <- vapply(results, function(r) json(r)$pid, integer(1))
  expect_true(all(served_by %in% valve_workers(server)$pid))
  direct <- http_get(sprintf("http://127.0.0.1:%d/pid", workers$port[[1]]))
  expect_equal(direct$status, 403L)

  everyone <- worker_pids(Sys.getpid())
  expect_true(all(c(template, workers$pid) %in% everyone))
  valve_stop(server)
  wait_until(function() !any(vapply(everyone, pid_alive, logical(1))), "the template and every fork are gone")
  succeed()
})

test_that("when the template dies, its workers keep serving and the next worker comes from a new one", {
  api <- withr::local_tempfile(fileext = ".R")
  writeLines(c(readLines(test_api()), "#* @get /version", "function() list(version = 1)"), api)
  server <- local_valve(plumber_file = api, n_min = 1, n_max = 3, preload = TRUE)
  first <- valve_workers(server)$pid
  old_template <- template_pid(valve_logs(server))
  tools::pskill(old_template, tools::SIGKILL)
  wait_until(function() !pid_alive(old_template), "the template is gone")

  expect_equal(json(http_get(paste0(server$url, "/pid")))$pid, first)
  results <- http_parallel(rep(paste0(server$url, "/sleep?ms=1500"), 3))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 3))
  log <- valve_logs(server)
  expect_match(paste(log, collapse = "\n"), sprintf("the preload template (pid %d) is gone; starting a new one", old_template), fixed = TRUE)
  new_template <- template_pid(log)
  expect_false(new_template == old_template)
  grown <- setdiff(valve_workers(server)$pid, first)
  expect_gte(length(grown), 1)
  expect_equal(vapply(grown, parent_pid, integer(1)), rep(new_template, length(grown)))

  # A reload replaces the template too: the new code is loaded once more.
  writeLines(c(readLines(test_api()), "#* @get /version", "function() list(version = 2)"), api)
  valve_reload(server)
  expect_equal(json(http_get(paste0(server$url, "/version")))$version, 2L)
  expect_false(template_pid(valve_logs(server)) == new_template)

  everyone <- worker_pids(Sys.getpid())
  valve_stop(server)
  wait_until(function() !any(vapply(c(first, everyone), pid_alive, logical(1))), "no fork of either template is left")
  succeed()
})

test_that("the template and its workers exit when the R process that started them is killed", {
  skip_if_no_engine()
  pid_file <- withr::local_tempfile()
  script <- sprintf(
    'server <- valve::valve_start(%s, port = 0, n_min = 2, n_max = 2, preload = TRUE)
     writeLines(as.character(Sys.getpid()), %s)
     Sys.sleep(600)',
    deparse(normalizePath(test_api())), deparse(pid_file)
  )
  parent <- processx::process$new(rscript(), c("-e", script), stdout = "|", stderr = "|")
  withr::defer(parent$kill())
  wait_until(function() file.exists(pid_file) && length(readLines(pid_file)) == 1, "the child starts valve")
  pids <- worker_pids(as.integer(readLines(pid_file)))
  expect_length(pids, 3)

  parent$signal(tools::SIGKILL)
  wait_until(function() !any(vapply(pids, pid_alive, logical(1))), "the template and the forks exit", timeout = 20)
  succeed()
})
