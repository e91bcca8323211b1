# Loading valve is cheap (no JVM, no rJava, no plumber); the first valve_start() starts the JVM,
# with valve's flags unless the user chose some. Each case runs in a fresh R, as a JVM's flags
# are fixed once it runs and this test process's JVM is already up.

# Runs `code` in a fresh Rscript and returns what it printed, one element a line.
fresh_r <- function(code) {
  result <- processx::run(rscript(), c("-e", code), error_on_status = FALSE, timeout = 120)
  if (result$status != 0) {
    stop("the fresh R failed (status ", result$status, "):\n", result$stdout, result$stderr, call. = FALSE)
  }
  strsplit(trimws(result$stdout), "\n", fixed = TRUE)[[1]]
}

# In the fresh R, starts valve on the test API, prints the JVM's input arguments one a line
# and stops valve.
start_and_report_jvm_args <- function(before = "") {
  api <- normalizePath(test_api())
  paste(
    before,
    "library(valve)",
    sprintf("server <- valve_start(%s, port = 0, n_min = 1, n_max = 1)", deparse(api)),
    'bean <- rJava::.jcall("java/lang/management/ManagementFactory", "Ljava/lang/management/RuntimeMXBean;", "getRuntimeMXBean")',
    'args <- rJava::.jcall(bean, "Ljava/util/List;", "getInputArguments")',
    'for (i in seq_len(rJava::.jcall(args, "I", "size")) - 1L) cat(rJava::.jcall(args, "Ljava/lang/Object;", "get", i)$toString(), "\\n", sep = "")',
    "valve_stop(server, grace = 0)",
    sep = "\n"
  )
}

test_that("library(valve) starts no JVM and loads neither rJava nor plumber", {
  skip_on_cran()
  out <- fresh_r(paste(
    "library(valve)",
    'cat("loaded:", loadedNamespaces(), "\\n")',
    'cat("libjvm:", any(grepl("libjvm", readLines("/proc/self/maps"))), "\\n")',
    sep = "\n"
  ))
  loaded <- strsplit(sub("^loaded: ", "", grep("^loaded:", out, value = TRUE)), " ")[[1]]
  expect_true("valve" %in% loaded)
  expect_false("plumber" %in% loaded)
  expect_false("later" %in% loaded)
  expect_false("rJava" %in% loaded)
  expect_equal(grep("^libjvm:", out, value = TRUE), "libjvm: FALSE")
})

test_that("valve_start() starts the JVM with valve's flags when the user chose none", {
  skip_if_no_engine()
  args <- fresh_r(start_and_report_jvm_args())
  expect_true(all(valve:::valve_java_parameters() %in% args))
})

test_that("valve answers calls made from deep in R's stack", {
  skip_if_no_engine()
  # With rJava's default -Xss2m the JVM took R's main thread stack to end 2 MiB down, and this
  # call failed with StackOverflowError.
  out <- fresh_r(paste(
    "library(valve)",
    sprintf("server <- valve_start(%s, port = 0, n_min = 1, n_max = 1)", deparse(normalizePath(test_api()))),
    "deep <- function(n) if (n == 0) nrow(valve_workers(server)) else deep(n - 1)",
    "cat('workers:', deep(500), '\\n')",
    "valve_stop(server, grace = 0)",
    sep = "\n"
  ))
  expect_true("workers: 1" %in% out)
})

test_that("rJava's own default java.parameters count as no choice", {
  skip_if_no_engine()
  # Loading rJava first sets the option to rJava's default, which the user did not choose.
  args <- fresh_r(start_and_report_jvm_args('loadNamespace("rJava")'))
  expect_true(all(valve:::valve_java_parameters() %in% args))
  expect_false(valve:::rjava_default_parameters %in% args)
})

test_that("valve_start() starts the JVM with the user's java.parameters when set", {
  skip_if_no_engine()
  args <- fresh_r(start_and_report_jvm_args(
    'options(java.parameters = c("-Xmx300m", "-Dvalve.test=yes"))'
  ))
  expect_true(all(c("-Xmx300m", "-Dvalve.test=yes") %in% args))
  # rJava passes -XX:+UnlockExperimentalVMOptions itself.
  expect_false(any(setdiff(valve:::valve_java_parameters(), c("-Xmx300m", "-XX:+UnlockExperimentalVMOptions")) %in% args))
  expect_false("-Xmx256m" %in% args)
})

test_that("the worker packages are checked, not loaded, when valve starts", {
  expect_setequal(valve:::worker_packages(), c("plumber", "later"))
  expect_invisible(valve:::check_worker_packages())
})

test_that("a JVM older than 21 is reported by valve_start(), not by library(valve)", {
  skip_on_cran()
  # R takes its JVM from JAVA_HOME when it starts: a fresh R on the Java 17 that `make deps`
  # installs runs the old JVM.
  old <- Sys.glob(c("/usr/lib/jvm/java-17-openjdk-*", "/usr/lib/jvm/temurin-17-*"))
  skip_if(length(old) == 0, "no Java 17 installed")
  withr::local_envvar(JAVA_HOME = old[[1]])
  out <- fresh_r(sprintf(
    'library(valve)
     cat("loaded\\n")
     tryCatch(valve_start(%s, port = 0), valve_error_java = function(e) cat("java error:", e$java_version, "\\n"))',
    deparse(normalizePath(test_api()))
  ))
  expect_true("loaded" %in% out)
  expect_true(any(grepl("^java error: 17", out)))
})
