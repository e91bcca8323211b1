# The root route's app (test-routes.R): every path no other route takes.

#* @get /whoami
function(req) {
  list(app = "root", path = req$PATH_INFO, query = req$QUERY_STRING,
       prefix = if (is.null(req$HTTP_X_FORWARDED_PREFIX)) "" else req$HTTP_X_FORWARDED_PREFIX,
       pid = Sys.getpid())
}
