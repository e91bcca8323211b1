# A "pod": says which address it serves on, and the most requests it ever had at once. /who
# answers from a promise, so the pod is free to take another request while it holds one: if
# valve sent a pod two requests at once, the pod itself would count both.
in_flight <- 0L
max_in_flight <- 0L

#* @get /who
function(ms = 0) {
  in_flight <<- in_flight + 1L
  max_in_flight <<- max(max_in_flight, in_flight)
  promises::promise(function(resolve, reject) {
    later::later(function() {
      in_flight <<- in_flight - 1L
      resolve(list(ip = Sys.getenv("POD_IP"), pid = Sys.getpid(), max_in_flight = max_in_flight))
    }, as.numeric(ms) / 1000)
  })
}
