# The same app as ../shiny/app.R in the older two-file layout, whose server takes no session.
fluidPage(
  numericInput("n", "n", value = 5),
  textOutput("result")
)
