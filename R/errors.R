# Every error valve raises has class c("valve_error_<kind>", "valve_error"), so callers can
# handle a cause (a taken port, a broken API file, an old Java) without parsing the message.
valve_abort <- function(message, kind, call = rlang::caller_env(), ..., .envir = parent.frame()) {
  cli::cli_abort(
    message,
    class = c(paste0("valve_error_", kind), "valve_error"),
    call = call,
    ...,
    .envir = .envir
  )
}

