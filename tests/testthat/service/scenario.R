# Service mode against a real DNS server. Runs as root inside a private network namespace
# (test-service.R sets it up): dnsmasq on 127.0.0.1 answers api.valve.test with one A record per
# pod, and each pod is a plumber process on its own loopback address. Writes results as JSON.
args <- commandArgs(trailingOnly = TRUE)
pod_api <- args[[1]]
out <- args[[2]]
library(valve)

hosts <- tempfile()
set_pods <- function(ips) writeLines(paste(ips, "api.valve.test"), hosts)
set_pods(c("127.0.0.2", "127.0.0.3"))
dns <- processx::process$new("dnsmasq", c(
  "--keep-in-foreground", "--no-resolv", "--no-hosts", paste0("--addn-hosts=", hosts),
  "--listen-address=127.0.0.1", "--bind-interfaces", "--local-ttl=1", "--user=root",
  "--conf-file=/dev/null", "--pid-file="
), stdout = NULL, stderr = NULL)
pods <- list()
start_pod <- function(ip) {
  pods[[ip]] <<- processx::process$new(file.path(R.home("bin"), "Rscript"), c("-e", sprintf(
    "Sys.setenv(POD_IP = '%s'); plumber::pr_run(plumber::plumb(%s), host = '%s', port = 8000, docs = FALSE, quiet = TRUE)",
    ip, deparse(pod_api), ip
  )), stdout = NULL, stderr = NULL)
}
on.exit({
  for (p in pods) if (p$is_alive()) p$kill()
  if (dns$is_alive()) dns$kill()
}, add = TRUE)
for (ip in c("127.0.0.2", "127.0.0.3", "127.0.0.4")) start_pod(ip)
until <- function(condition, timeout = 60) {
  deadline <- Sys.time() + timeout
  while (!isTRUE(condition())) {
    if (Sys.time() > deadline) stop("timed out")
    Sys.sleep(0.05)
  }
}
answers <- function(url) tryCatch(curl::curl_fetch_memory(url)$status_code == 200, error = function(e) FALSE)
for (ip in names(pods)) until(function() answers(sprintf("http://%s:8000/who", ip)))

server <- valve_start(upstream = "http://api.valve.test:8000", port = 0, resolve_interval = 0.3, admin_port = 0)
on.exit(valve_stop(server, grace = 0), add = TRUE, after = FALSE)
pod_ips <- function() sort(sub("^pod ([0-9.]+):.*", "\\1", valve_workers(server)$name))
# One series of the admin listener's /metrics, such as 'valve_pods{state="serving"}'.
metric <- function(series) {
  lines <- strsplit(rawToChar(curl::curl_fetch_memory(paste0(server$admin_url, "/metrics"))$content), "\n")[[1]]
  line <- lines[startsWith(lines, paste0(series, " "))]
  if (length(line) == 1) as.numeric(sub("^.* ", "", line)) else NA
}

# The most requests any pod reports having had at once, over every answer it gave.
pod_max_in_flight <- 0L
# Runs `n` concurrent requests; returns status and serving address of each.
batch <- function(n, ms = 200) {
  pool <- curl::new_pool()
  got <- list()
  for (i in seq_len(n)) {
    curl::curl_fetch_multi(paste0(server$url, "/who?ms=", ms), pool = pool,
      done = function(r) {
        answer <- if (r$status_code == 200) jsonlite::fromJSON(rawToChar(r$content))
        if (!is.null(answer)) pod_max_in_flight <<- max(pod_max_in_flight, answer$max_in_flight)
        got[[length(got) + 1]] <<- list(status = r$status_code, ip = if (is.null(answer)) NA else answer$ip)
      },
      fail = function(e) got[[length(got) + 1]] <<- list(status = NA, ip = NA))
  }
  curl::multi_run(pool = pool)
  data.frame(status = vapply(got, function(g) as.integer(g$status), 1L), ip = vapply(got, function(g) as.character(g$ip), ""))
}

result <- list()
until(function() identical(pod_ips(), c("127.0.0.2", "127.0.0.3")))
first <- batch(8)
result$initial <- list(statuses = first$status, ips = sort(unique(first$ip)),
                       pods_serving = metric('valve_pods{state="serving"}'))

# A pod joins while requests run.
set_pods(c("127.0.0.2", "127.0.0.3", "127.0.0.4"))
dns$signal(tools::SIGHUP)
during_join <- data.frame()
while (!identical(pod_ips(), c("127.0.0.2", "127.0.0.3", "127.0.0.4"))) during_join <- rbind(during_join, batch(4, 50))
after_join <- batch(9)
result$join <- list(statuses = c(during_join$status, after_join$status), ips = sort(unique(after_join$ip)))

# A pod leaves while requests run: it is drained, nothing fails.
set_pods(c("127.0.0.3", "127.0.0.4"))
dns$signal(tools::SIGHUP)
during_leave <- data.frame()
while (!identical(pod_ips(), c("127.0.0.3", "127.0.0.4"))) during_leave <- rbind(during_leave, batch(4, 50))
after_leave <- batch(6)
result$leave <- list(statuses = c(during_leave$status, after_leave$status), ips = sort(unique(after_leave$ip)))

# A pod dies with a request in flight: only that request fails, with 502.
pool <- curl::new_pool()
doomed <- list()
for (i in 1:2) {
  curl::curl_fetch_multi(paste0(server$url, "/who?ms=5000"), pool = pool,
    done = function(r) doomed[[length(doomed) + 1]] <<- r$status_code,
    fail = function(e) doomed[[length(doomed) + 1]] <<- NA)
}
curl::multi_run(timeout = 0.5, pool = pool)
until(function() sum(valve_workers(server)$busy) == 2)
pods[["127.0.0.4"]]$kill()
curl::multi_run(pool = pool)
after_death <- batch(4)
# The dead pod is out, and stays a suspect while DNS still lists it.
until(function() identical(metric('valve_pods{state="suspect"}'), 1))
result$death <- list(statuses = unlist(doomed), after = after_death$status, ips = sort(unique(after_death$ip)),
                     pods_serving = metric('valve_pods{state="serving"}'),
                     answered_502 = metric('valve_errors_total{code="502",reason="upstream_broken"}'))
result$max_in_flight <- max(valve_workers(server)$max_in_flight)
result$pod_max_in_flight <- pod_max_in_flight
result$logs <- valve_logs(server)

# The command line's service mode, against the same pods.
cli_port <- httpuv::randomPort()
cli <- processx::process$new(system.file("bin", "valve", package = "valve"),
  c("k8s", "--service-url", "http://api.valve.test:8000", "--resolve-interval", "0.3", "-p", cli_port),
  stdout = "|", stderr = "|")
on.exit(if (cli$is_alive()) cli$kill(), add = TRUE, after = FALSE)
until(function() answers(sprintf("http://127.0.0.1:%d/who", cli_port)))
cli_answers <- lapply(1:3, function(i) jsonlite::fromJSON(rawToChar(
  curl::curl_fetch_memory(sprintf("http://127.0.0.1:%d/who", cli_port))$content)))
cli$signal(tools::SIGTERM)
cli$wait(30000)
result$cli <- list(ips = sort(unique(vapply(cli_answers, `[[`, "", "ip"))), status = cli$get_exit_status())

# DNS goes away: look-ups fail, and the last known pods keep serving.
dns$kill()
known <- pod_ips()
Sys.sleep(1.5)
without_dns <- batch(4)
result$dns_down <- list(statuses = without_dns$status, before = known, after = pod_ips(),
                        logged = any(grepl("cannot resolve api.valve.test", valve_logs(server), fixed = TRUE)))
result$logs <- c(result$logs, valve_logs(server))
jsonlite::write_json(result, out, auto_unbox = FALSE)
