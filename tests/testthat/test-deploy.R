# The Kubernetes manifests shipped in inst/deploy/k8s: well-formed, the expected kinds, and
# labels, ports and names that agree with each other and with valve's own flags.
read_manifests <- function(file) {
  text <- paste(readLines(file), collapse = "\n")
  documents <- strsplit(text, "\n---\n", fixed = TRUE)[[1]]
  manifests <- lapply(documents, yaml::yaml.load)
  names(manifests) <- vapply(manifests, `[[`, "", "kind")
  manifests
}

# A container's environment as a named character vector.
env_of <- function(container) {
  stats::setNames(vapply(container$env, `[[`, "", "value"), vapply(container$env, `[[`, "", "name"))
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
  env <- env_of(container)
  expect_equal(as.integer(env[["PORT"]]), container$ports[[1]]$containerPort)
  expect_equal(router$Service$spec$ports[[1]]$targetPort, container$ports[[1]]$name)
})

test_that("the router's probes and Prometheus's scrape use valve's admin port", {
  router <- read_manifests(k8s_file("valve.yaml"))
  template <- router$Deployment$spec$template
  container <- template$spec$containers[[1]]
  env <- env_of(container)
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

# The Dockerfile is at the root of the sources, outside the package: make check says where they
# are (R CMD check runs the tests from a copy of the package). make image-test builds and runs it.
dockerfile <- function() {
  dir <- Sys.getenv("VALVE_SOURCE_DIR")
  if (!nzchar(dir)) {
    if (identical(Sys.getenv("VALVE_E2E"), "required")) stop("VALVE_SOURCE_DIR is not set", call. = FALSE)
    skip("VALVE_SOURCE_DIR (the package's sources) is not set")
  }
  text <- gsub("\\\\\n", " ", paste(readLines(file.path(dir, "Dockerfile")), collapse = "\n"))
  lines <- grep("^[[:space:]]*(#|$)", strsplit(text, "\n")[[1]], value = TRUE, invert = TRUE)
  list(
    dir = dir,
    instruction = toupper(sub("^[[:space:]]*([A-Za-z]+).*", "\\1", lines)),
    argument = trimws(sub("^[[:space:]]*[A-Za-z]+[[:space:]]+", "", lines))
  )
}

test_that("the Dockerfile builds from Debian's trixie-slim alone and runs valve's CLI as a non-root user", {
  file <- dockerfile()
  from <- file$argument[file$instruction == "FROM"]
  stages <- sub(".* AS ", "", grep(" AS ", from, value = TRUE))
  expect_true(all(sub(" AS .*", "", from) %in% c("debian:trixie-slim", stages)))
  final <- max(which(file$instruction == "FROM"))
  after <- seq_along(file$instruction) > final
  # The runtime has a JRE only: the CLI must not ask for javac.
  expect_match(paste(file$argument[file$instruction == "RUN"], collapse = " "), "openjdk-\\$\\{JAVA_VERSION\\}-jre-headless")
  expect_match(paste(readLines(system.file("bin", "valve", package = "valve")), collapse = "\n"), "find-jdk\" --runtime")
  user <- file$argument[after & file$instruction == "USER"]
  expect_length(user, 1)
  expect_match(user, "^[0-9]+(:[0-9]+)?$")
  expect_false(sub(":.*", "", user) == "0")
  entrypoint <- jsonlite::fromJSON(file$argument[file$instruction == "ENTRYPOINT"])
  expect_match(entrypoint[length(entrypoint)], "/valve/bin/valve$")
  copied <- sub(" .*", "", file$argument[after & file$instruction == "COPY" & !grepl("^--from", file$argument)])
  expect_true(all(file.exists(file.path(file$dir, copied))))
})

test_that("the image listens on PORT, and its HEALTHCHECK asks the admin port that valve.yaml probes", {
  file <- dockerfile()
  env <- paste(file$argument[file$instruction == "ENV"], collapse = " ")
  value <- function(name) regmatches(env, regexec(paste0("\\b", name, "=([^ ]+)"), env))[[1]][2]
  expect_equal(value("VALVE_HOST"), "0.0.0.0")
  expose <- strsplit(file$argument[file$instruction == "EXPOSE"], " +")[[1]]
  expect_setequal(expose, c(value("PORT"), value("VALVE_ADMIN_PORT")))
  healthcheck <- file$argument[file$instruction == "HEALTHCHECK"]
  expect_match(healthcheck, "http://127.0.0.1:${VALVE_ADMIN_PORT}/readyz", fixed = TRUE)
  router <- read_manifests(k8s_file("valve.yaml"))$Deployment$spec$template$spec$containers[[1]]
  expect_equal(env_of(router)[["VALVE_ADMIN_PORT"]], value("VALVE_ADMIN_PORT"))
})
