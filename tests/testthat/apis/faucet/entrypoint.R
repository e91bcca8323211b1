# Faucet's convention: the entrypoint starts the server itself, on the port it is given.
library(plumber)
pr() |>
  pr_get("/who", function() list(style = "faucet", pid = Sys.getpid())) |>
  pr_run(host = "127.0.0.1", port = as.integer(Sys.getenv("FAUCET_PORT")), docs = FALSE)
