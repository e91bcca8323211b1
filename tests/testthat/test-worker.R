# The worker side of the engine: what R hands the engine, and what a worker gives API code.

# RDS files that valve writes for the engine in this session's temporary directory.
handed_files <- function() {
  list.files(tempdir(), "^valve-(api|run-args)-.*\\.rds$", full.names = TRUE)
}

test_that("the worker member says what to serve, with this session's R and libraries", {
  file <- normalizePath(test_api())
  spec <- valve:::worker_spec(list(mode = "file", file = file), run_args = list())
  expect_equal(spec$mode, "file")
  expect_equal(spec$path, file)
  expect_equal(spec$rscript, file.path(R.home("bin"), "Rscript"))
  expect_null(spec$run_args)
  expect_null(spec$directory)
  # A list, so that one library path still goes to the engine as a JSON array.
  expect_equal(spec$lib_paths, as.list(.libPaths()))

  before <- handed_files()
  spec <- valve:::worker_spec(list(mode = "api", api = function() NULL), run_args = list(docs = FALSE))
  withr::defer(unlink(c(spec$path, spec$run_args)))
  expect_setequal(setdiff(handed_files(), before), c(spec$path, spec$run_args))
  expect_equal(readRDS(spec$run_args), list(docs = FALSE))
  expect_equal(spec$directory, getwd())
})

test_that("the engine deletes the files R handed it when it stops", {
  skip_if_no_engine()
  before <- handed_files()
  server <- valve_start(api = function() plumber::pr() |> plumber::pr_get("/hi", function() "hi"),
                        port = 0, docs = FALSE)
  withr::defer(valve_stop(server, grace = 0))
  handed <- setdiff(handed_files(), before)
  expect_length(handed, 2)
  expect_equal(http_get(paste0(server$url, "/hi"))$status, 200L)

  valve_stop(server, grace = 0)
  expect_equal(handed[file.exists(handed)], character())
})

test_that("the engine deletes the files R handed it when the workers fail to start", {
  skip_if_no_engine()
  before <- handed_files()
  expect_error(valve_start(api = function() 42, port = 0, docs = FALSE), class = "valve_error_startup")
  expect_equal(setdiff(handed_files(), before), character())
})

test_that("workers attach plumber, as the interactive session the API was written in would", {
  server <- local_valve(plumber_file = test_api("attached.R"))
  expect_equal(json(http_get(paste0(server$url, "/piped")))$piped, TRUE)

  response <- curl::curl_fetch_memory(paste0(server$url, "/download"), handle = curl::new_handle(timeout = 60))
  expect_equal(response$status_code, 200L)
  headers <- curl::parse_headers_list(response$headers)
  expect_equal(headers[["content-disposition"]], 'attachment; filename="hello.txt"')
  expect_equal(rawToChar(response$content), "hello")
})
