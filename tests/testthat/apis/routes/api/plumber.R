# One of two apps behind valve's routes (test-routes.R): says what it saw of the request.

#* @get /whoami
function(req) {
  list(app = "api", path = req$PATH_INFO, query = req$QUERY_STRING,
       prefix = if (is.null(req$HTTP_X_FORWARDED_PREFIX)) "" else req$HTTP_X_FORWARDED_PREFIX,
       pid = Sys.getpid())
}

#* @get /files/<name>
function(name) list(app = "api", name = name)

#* @get /sleep
function(ms = 1000) {
  Sys.sleep(as.numeric(ms) / 1000)
  list(app = "api", pid = Sys.getpid())
}
