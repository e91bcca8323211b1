# An API that starts, and answers /wait, only when a test says so, by creating a file: the probe
# tests look at valve while a worker is still starting and while a request is in flight,
# without timing anything.
gate <- Sys.getenv("VALVE_TEST_GATE")
while (!file.exists(gate)) Sys.sleep(0.05)

#* Answers once the file `path` exists.
#* @get /wait
function(path) {
  while (!file.exists(path)) Sys.sleep(0.05)
  list(pid = Sys.getpid())
}
