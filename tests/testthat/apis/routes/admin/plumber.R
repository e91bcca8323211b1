# The other app behind valve's routes (test-routes.R), served as a directory.

#* @get /whoami
function(req) {
  list(app = "admin", path = req$PATH_INFO, query = req$QUERY_STRING,
       prefix = if (is.null(req$HTTP_X_FORWARDED_PREFIX)) "" else req$HTTP_X_FORWARDED_PREFIX,
       pid = Sys.getpid())
}
