# Service (Kubernetes) mode against a real DNS server, in a private network namespace. Needs
# root, iproute2 and dnsmasq; `make check` installs them and runs as root.
skip_if_no_netns <- function() {
  skip_if_no_engine()
  why <- if (Sys.info()[["effective_user"]] != "root") "needs root" else
    if (!nzchar(Sys.which("ip")) || !nzchar(Sys.which("dnsmasq"))) "needs ip and dnsmasq" else NULL
  if (!is.null(why)) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop("service-mode test ", why, call. = FALSE)
    skip(why)
  }
}

test_that("pods from DNS share the load one request each, join and leave without failures, and a dead pod fails only its request", {
  skip_if_no_netns()
  ns <- paste0("valve-test-", Sys.getpid())
  expect_equal(system2("ip", c("netns", "add", ns)), 0L)
  withr::defer(system2("ip", c("netns", "delete", ns)))
  dir.create(file.path("/etc/netns", ns), recursive = TRUE)
  withr::defer(unlink(file.path("/etc/netns", ns), recursive = TRUE))
  writeLines("nameserver 127.0.0.1", file.path("/etc/netns", ns, "resolv.conf"))
  expect_equal(system2("ip", c("netns", "exec", ns, "ip", "link", "set", "lo", "up")), 0L)

  out <- withr::local_tempfile(fileext = ".json")
  run <- processx::run("ip", c("netns", "exec", ns, file.path(R.home("bin"), "Rscript"),
                               normalizePath(test_path("service", "scenario.R")),
                               normalizePath(test_path("service", "pod.R")), out),
                       error_on_status = FALSE, timeout = 300)
  if (run$status != 0) fail(paste("scenario failed:", run$stderr))
  result <- jsonlite::read_json(out, simplifyVector = TRUE)

  expect_true(all(result$initial$statuses == 200))
  expect_equal(result$initial$ips, c("127.0.0.2", "127.0.0.3"))
  expect_equal(result$initial$pods_serving, 2)
  expect_true(all(result$join$statuses == 200))
  expect_equal(result$join$ips, c("127.0.0.2", "127.0.0.3", "127.0.0.4"))
  expect_true(all(result$leave$statuses == 200))
  expect_equal(result$leave$ips, c("127.0.0.3", "127.0.0.4"))
  expect_equal(sort(result$death$statuses), c(200L, 502L))
  expect_true(all(result$death$after == 200))
  expect_equal(result$death$ips, "127.0.0.3")
  expect_equal(result$death$pods_serving, 1)
  expect_equal(result$death$answered_502, 1)
  # One request per pod, as the pods themselves counted them, and as valve's counter says.
  expect_equal(result$pod_max_in_flight, 1L)
  expect_equal(result$max_in_flight, 1L)
  expect_equal(result$cli$ips, "127.0.0.3")
  expect_equal(result$cli$status, 0L)
  expect_true(all(result$dns_down$statuses == 200))
  expect_equal(result$dns_down$after, result$dns_down$before)
  expect_true(result$dns_down$logged)
  expect_true(any(grepl("pod 127.0.0.4:8000 joined", result$logs, fixed = TRUE)))
  expect_true(any(grepl("pod 127.0.0.2 left api.valve.test; draining it", result$logs, fixed = TRUE)))
})

test_that("upstream = is checked before anything starts", {
  expect_error(valve_start(upstream = "api:8000"), "http://name:port", class = "valve_error_argument")
  expect_error(valve_start(upstream = "http://api:8000", per_pod = 0), "per_pod", class = "valve_error_argument")
  expect_error(valve_start(test_api(), upstream = "http://api:8000"), "only one of", class = "valve_error_argument")
})
