# A "pod": says which address it serves on.

#* @get /who
function(ms = 0) {
  Sys.sleep(as.numeric(ms) / 1000)
  list(ip = Sys.getenv("POD_IP"), pid = Sys.getpid())
}
