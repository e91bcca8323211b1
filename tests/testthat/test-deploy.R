# The Kubernetes manifests shipped in inst/deploy/k8s: well-formed, the expected kinds, and
# labels, ports and names that agree with each other and with valve's own flags.
read_manifests <- function(file) {
  text <- paste(readLines(file), collapse = "\n")
  documents <- strsplit(text, "\n---\n", fixed = TRUE)[[1]]
  manifests <- lapply(documents, yaml::yaml.load)
  names(manifests) <- vapply(manifests, `[[`, "", "kind")
  manifests
}

k8s_file <- function(name) system.file("deploy", "k8s", name, package = "valve", mustWork = TRUE)

test_that("the API manifest: a Deployment, a headless Service and an autoscaler that agree", {
  api <- read_manifests(k8s_file("api.yaml"))
  expect_setequal(names(api), c("Deployment", "Service", "HorizontalPodAutoscaler"))
  deployment <- api$Deployment
  labels <- deployment$spec$template$metadata$labels
  expect_equal(deployment$spec$selector$matchLabels, labels)
  expect_equal(api$Service$spec$selector, labels)
  expect_equal(api$Service$spec$clusterIP, "None")
  container <- deployment$spec$template$spec$containers[[1]]
  expect_true(api$Service$spec$ports[[1]]$targetPort %in% vapply(container$ports, `[[`, "", "name"))
  expect_false(is.null(container$readinessProbe))
  expect_false(is.null(container$livenessProbe))
  expect_false(is.null(container$resources$requests$cpu))
  expect_equal(api$HorizontalPodAutoscaler$spec$scaleTargetRef$name, deployment$metadata$name)
})

test_that("the valve manifest points `valve k8s` at the API's headless Service and port", {
  api <- read_manifests(k8s_file("api.yaml"))
  router <- read_manifests(k8s_file("valve.yaml"))
  expect_setequal(names(router), c("Deployment", "Service"))
  labels <- router$Deployment$spec$template$metadata$labels
  expect_equal(router$Deployment$spec$selector$matchLabels, labels)
  expect_equal(router$Service$spec$selector, labels)
  container <- router$Deployment$spec$template$spec$containers[[1]]
  expect_equal(container$args[[1]], "k8s")
  url <- container$args[[which(container$args == "--service-url") + 1]]
  expect_equal(url, sprintf("http://%s:%d", api$Service$metadata$name, api$Service$spec$ports[[1]]$port))
  env <- stats::setNames(vapply(container$env, `[[`, "", "value"), vapply(container$env, `[[`, "", "name"))
  expect_equal(as.integer(env[["PORT"]]), container$ports[[1]]$containerPort)
  expect_equal(router$Service$spec$ports[[1]]$targetPort, container$ports[[1]]$name)
})

test_that("the router's probes and Prometheus's scrape use valve's admin port", {
  router <- read_manifests(k8s_file("valve.yaml"))
  template <- router$Deployment$spec$template
  container <- template$spec$containers[[1]]
  env <- stats::setNames(vapply(container$env, `[[`, "", "value"), vapply(container$env, `[[`, "", "name"))
  ports <- stats::setNames(vapply(container$ports, `[[`, 1L, "containerPort"), vapply(container$ports, `[[`, "", "name"))
  expect_equal(as.integer(env[["VALVE_ADMIN_PORT"]]), ports[["admin"]])
  expect_false(as.integer(env[["VALVE_ADMIN_PORT"]]) == as.integer(env[["PORT"]]))
  expect_equal(container$readinessProbe$httpGet, list(path = "/readyz", port = "admin"))
  expect_equal(container$livenessProbe$httpGet, list(path = "/healthz", port = "admin"))
  annotations <- template$metadata$annotations
  expect_equal(annotations[["prometheus.io/scrape"]], "true")
  expect_equal(as.integer(annotations[["prometheus.io/port"]]), ports[["admin"]])
  expect_equal(annotations[["prometheus.io/path"]], "/metrics")
  # The admin port is not published through the router's Service.
  expect_false("admin" %in% vapply(router$Service$spec$ports, `[[`, "", "targetPort"))
})
