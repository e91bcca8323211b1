# plumber's convention: the entrypoint returns a router, which valve runs.
plumber::pr() |>
  plumber::pr_get("/who", function() {
    list(
      style = "router",
      option = getOption("plumber.port"),
      env = as.list(Sys.getenv(c("VALVE_PORT", "FAUCET_PORT", "PLUMBER_PORT")))
    )
  })
