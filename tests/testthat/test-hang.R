# valve must never stop answering. These run valve in a child R session whose JVM is started
# with the flags under test (rJava reads java.parameters once, when the JVM starts), so a hang
# shows up as the child never reporting back, which wait_until() turns into a failure.

# Starts valve in a child R whose JVM gets `java_parameters`; the child reports its URL and
# workers through files, copies its log to a file, and stops valve when told. Returns handles
# for the test to drive it; the child (and its workers) are killed when the test ends.
child_valve <- function(java_parameters, start_args, .local_envir = parent.frame()) {
  skip_if_no_engine()
  dir <- withr::local_tempdir(.local_envir = .local_envir)
  script <- sprintf(
    'options(java.parameters = %s)
     library(valve)
     server <- do.call(valve_start, %s)
     writeLines(as.character(valve_workers(server)$pid), file.path(%s, "pids"))
     writeLines(server$url, file.path(%s, "url"))
     while (!file.exists(file.path(%s, "stop"))) {
       Sys.sleep(0.1)
       cat(valve_logs(server), file = file.path(%s, "log"), sep = "\n", append = TRUE)
     }
     valve_stop(server, grace = 1)
     writeLines("stopped", file.path(%s, "stopped"))',
    deparse1(java_parameters), deparse1(start_args), deparse(dir), deparse(dir), deparse(dir),
    deparse(dir), deparse(dir)
  )
  child <- processx::process$new(rscript(), c("-e", script), stdout = "|", stderr = "2>&1")
  withr::defer(child$kill_tree(), envir = .local_envir)
  file <- function(name) file.path(dir, name)
  wait_until(function() {
    if (!child$is_alive()) stop("the child R exited:\n", child$read_all_output(), call. = FALSE)
    file.exists(file("url"))
  }, "the child's valve_start() returns", timeout = 120)
  list(
    child = child,
    url = readLines(file("url")),
    pids = as.integer(readLines(file("pids"))),
    log = function() if (file.exists(file("log"))) readLines(file("log")) else character(),
    stop = function() {
      file.create(file("stop"))
      wait_until(function() file.exists(file("stopped")), "the child's valve_stop() returns", timeout = 60)
    }
  )
}

squeezed <- c("-Djdk.virtualThreadScheduler.parallelism=1", "-Djdk.virtualThreadScheduler.maxPoolSize=1")

test_that("with one virtual-thread carrier, valve starts four workers, serves and stops", {
  valve <- child_valve(squeezed, list(plumber_file = normalizePath(test_api()), port = 0, n_min = 4, n_max = 4))
  expect_length(valve$pids, 4)
  results <- http_parallel(rep(paste0(valve$url, "/sleep?ms=200"), 16))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 16))
  served_by <- vapply(results, function(r) jsonlite::fromJSON(r$body)$pid, integer(1))
  expect_true(all(served_by %in% valve$pids))
  valve$stop()
  wait_until(function() !any(vapply(valve$pids, pid_alive, logical(1))), "every worker is gone")
  succeed()
})

test_that("after more than 60 s without a request, valve still serves, scales, reaps and stops", {
  # As many workers as the CPUs the JVM sees: the JDK retires idle carriers after about 30 s,
  # and blocking readers then held every remaining one.
  valve <- child_valve("-XX:ActiveProcessorCount=2", list(
    plumber_file = normalizePath(test_api()), port = 0, n_min = 2, n_max = 3,
    max_age = 1, check_unused = 0.5
  ))
  Sys.sleep(65)
  results <- http_parallel(rep(paste0(valve$url, "/sleep?ms=1500"), 3))
  expect_equal(vapply(results, `[[`, integer(1), "status"), rep(200L, 3))
  # A request had to wait, so a third worker starts; once all are idle for max_age, one goes.
  wait_until(function() any(grepl("worker 3 ready", valve$log())), "a third worker starts")
  reaped <- NULL
  wait_until(function() {
    line <- grep("stopping worker [0-9]+ \\(pid [0-9]+\\): idle", valve$log(), value = TRUE)
    reaped <<- as.integer(sub(".*\\(pid ([0-9]+)\\).*", "\\1", line[1]))
    length(line) > 0
  }, "an idle worker is reaped")
  wait_until(function() !pid_alive(reaped), "the reaped worker's process exits")
  third <- as.integer(sub(".*worker 3 ready.*pid ([0-9]+).*", "\\1", grep("worker 3 ready", valve$log(), value = TRUE)[1]))
  valve$stop()
  wait_until(function() !any(vapply(c(valve$pids, third), pid_alive, logical(1))), "every worker is gone")
  succeed()
})
